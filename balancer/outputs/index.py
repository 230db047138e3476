"""Which output files are in the bucket, by the names clients echo to /view:
(type, subfolder with its @backend prefix, filename) -> key. Built from the
kept history at start and kept current as jobs end."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from balancer.auth.owners import item_ref
from balancer.outputs.items import stored_keys

FileRef = tuple[str, str, str]
MAX_FILES = 200_000


class StoredFiles:
    def __init__(self, histories: Mapping[str, Any]) -> None:
        self._keys: OrderedDict[FileRef, str] = OrderedDict()
        for entry in histories.values():
            self.add(entry)

    def add(self, entry: Any) -> None:
        for item, key in stored_keys(entry):
            ref = item_ref(item)
            self._keys[ref] = key
            self._keys.move_to_end(ref)
        while len(self._keys) > MAX_FILES:
            self._keys.popitem(last=False)

    def remove(self, entry: Any) -> None:
        for item, key in stored_keys(entry):
            ref = item_ref(item)
            if self._keys.get(ref) == key:
                del self._keys[ref]

    def key_of(self, ref: FileRef) -> str | None:
        return self._keys.get(ref)
