"""Which files a prompt references.

A reference is a string input that is: a LoadImage/LoadImageMask `image`; a
name with a ` [input]`, ` [output]` or ` [temp]` annotation; or any string
that names a file in the upload store. `sub/name.png` names a file in a
subfolder; a subfolder starting with `@<backend>` names a file that backend
holds (clients build these from the balancer's renamed history).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from balancer.files.locate import locate_value
from balancer.files.paths import FileKey

LOADERS = frozenset({"LoadImage", "LoadImageMask"})


@dataclass(frozen=True)
class Ref:
    node: str
    input: str
    value: str
    key: FileKey  # type, subfolder and name as the holder sees them
    owner: str | None  # the backend of an `@backend` prefix
    annotated: bool

    def placed_value(self, key: FileKey) -> str:
        """The value naming `key` on the backend that runs the prompt."""
        if key.type == "input" and not self.annotated:
            return key.relative
        return f"{key.relative} [{key.type}]"


def parse_ref(value: str) -> tuple[FileKey, str | None, bool] | None:
    """(key, owner, annotated) of a value that looks like a file name, else
    None; the same resolution the tenant check uses (`locate_value`)."""
    found = locate_value(value)
    if found is None:
        return None
    return found.location.key, found.location.backend, found.annotated


def find_refs(prompt: Any, in_store: Callable[[FileKey], bool]) -> list[Ref]:
    """Every file reference of an API-format prompt, in node order."""
    return list(_walk(prompt, in_store)) if isinstance(prompt, dict) else []


def _walk(prompt: dict[str, Any], in_store: Callable[[FileKey], bool]) -> Iterator[Ref]:
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        loader = node.get("class_type") in LOADERS
        for name, value in node["inputs"].items():
            if not isinstance(value, str):
                continue
            parsed = parse_ref(value)
            if parsed is None:
                continue
            key, owner, annotated = parsed
            wanted = (loader and name == "image") or annotated or owner is not None
            if wanted or in_store(key):
                yield Ref(str(node_id), str(name), value, key, owner, annotated)


def rewrite(prompt: dict[str, Any], changes: dict[tuple[str, str], str]) -> dict[str, Any]:
    """A copy of `prompt` with `(node, input) -> value` replaced; untouched
    nodes are shared, not copied."""
    if not changes:
        return prompt
    out = dict(prompt)
    for (node_id, name), value in changes.items():
        node = out[node_id]
        out[node_id] = {**node, "inputs": {**node["inputs"], name: value}}
    return out
