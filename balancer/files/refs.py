"""Which files a prompt references.

A reference is a string input that is: a LoadImage/LoadImageMask `image`; a
name with a ` [input]`, ` [output]` or ` [temp]` annotation; or any string
that names a file in the upload store. `sub/name.png` names a file in a
subfolder; a subfolder starting with `@<backend>` names a file that backend
holds (clients build these from the balancer's renamed history).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
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


def names_in(prompt: Any) -> set[FileKey]:
    """Every key a string input of `prompt` could name (to look up in the
    store at once before `find_refs`)."""
    if not isinstance(prompt, dict):
        return set()
    return {key for _, _, _, (key, _, _) in _parsed(prompt)}


def find_refs(prompt: Any, stored: Collection[FileKey]) -> list[Ref]:
    """Every file reference of an API-format prompt, in node order; a plain
    string counts when it names a file in `stored`."""
    if not isinstance(prompt, dict):
        return []
    refs = []
    for node_id, name, value, (key, owner, annotated) in _parsed(prompt):
        loader = prompt[node_id].get("class_type") in LOADERS
        wanted = (loader and name == "image") or annotated or owner is not None
        if wanted or key in stored:
            refs.append(Ref(str(node_id), str(name), value, key, owner, annotated))
    return refs


Parsed = tuple[FileKey, str | None, bool]


def _parsed(prompt: dict[Any, Any]) -> Iterator[tuple[Any, Any, str, Parsed]]:
    """(node id, input name, value, parsed) of every string input that looks
    like a file name."""
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        for name, value in node["inputs"].items():
            if isinstance(value, str) and (parsed := parse_ref(value)) is not None:
                yield node_id, name, value, parsed


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
