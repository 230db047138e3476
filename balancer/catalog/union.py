"""The pool's catalogue as one server's: the union of the healthy backends'
catalogues, so the web UI and SDKs offer every node and model the pool has
(and the capability filter sends each prompt where it can run).

Recomputed only when a catalogue or the healthy set changes (`Union.key`);
the key is the base of the routes' ETag.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from balancer.catalog.model import Catalogue, ComboKey, combo_values


def merged(own: list[str], union: set[str]) -> list[str]:
    """One combo list for the pool: the backends' own order when they all
    agree (a sampler list keeps its default first), else sorted."""
    return own if set(own) == union else sorted(union)


def _with_values(spec: list[Any], values: list[str]) -> list[Any]:
    if isinstance(spec[0], list):
        return [values, *spec[1:]]
    return [spec[0], {**spec[1], "options": values}, *spec[2:]]


def union_definition(class_type: str, definition: Any, combos: Mapping[ComboKey, set[str]]) -> Any:
    """`definition` with each combo list replaced by the pool's."""
    out = copy.deepcopy(definition)
    for category in ("required", "optional"):
        inputs = out.get("input") if isinstance(out, dict) else None
        part = inputs.get(category) if isinstance(inputs, dict) else None
        if not isinstance(part, dict):
            continue
        for name, spec in part.items():
            own = combo_values(spec)
            union = combos.get((class_type, name))
            if own is not None and union is not None:
                part[name] = _with_values(spec, merged(own, union))
    return out


@dataclass(frozen=True)
class Union:
    key: str
    object_info: dict[str, Any]
    models: dict[str, list[str]]
    embeddings: list[str]


def build_union(key: str, catalogues: Iterable[Catalogue], definitions: Mapping[str, Any]) -> Union:
    known = list(catalogues)
    classes = set().union(*(c.classes for c in known))
    combos: dict[ComboKey, set[str]] = {}
    folders: dict[str, set[str]] = {}
    for c in known:
        for combo, values in c.combos.items():
            combos.setdefault(combo, set()).update(values)
        for folder, names in c.models.items():
            folders.setdefault(folder, set()).update(names)
    info = {  # in the order ComfyUI registered them on the first backend seen
        name: union_definition(name, definition, combos)
        for name, definition in definitions.items()
        if name in classes
    }
    return Union(
        key,
        info,
        {folder: sorted(names) for folder, names in sorted(folders.items())},
        sorted(set().union(*(c.embeddings for c in known))),
    )
