"""Which files of a history entry go to the bucket, and under which key.

Keys are `{prefix}/{tenant}/{prompt_id}/{node_id}/{filename}`: job-scoped,
so a tenant's objects are one prefix to list, sign or delete. Every segment
is made a safe single path segment first (a store that maps keys to paths,
like rclone or MinIO, must never see `..`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from balancer.files.naming import from_client_subfolder

ANONYMOUS = "@anonymous"  # no key configured; `@` is never in a key name
Item = dict[str, Any]


@dataclass(frozen=True)
class OutputFile:
    """One file item of an entry: where it is in the entry and on its backend."""

    node_id: str
    kind: str  # the output key in the node's UI output: images, gifs, audio ...
    index: int
    filename: str
    subfolder: str  # the backend's own subfolder (the @backend prefix removed)
    type: str


def segment(text: str) -> str:
    cleaned = text.replace("/", "_").replace("\\", "_") or "_"
    return f"_{cleaned}" if cleaned in (".", "..") else cleaned


def job_prefix(prefix: str, tenant: str | None, prompt_id: str) -> str:
    parts = [prefix] if prefix else []
    return "/".join([*parts, segment(tenant or ANONYMOUS), segment(prompt_id)]) + "/"


def object_key(job: str, file: OutputFile) -> str:
    return f"{job}{segment(file.node_id)}/{segment(file.filename)}"


def files_of(entry: Any, include_temp: bool) -> list[OutputFile]:
    """File items (`filename`/`subfolder`/`type`) in an entry's outputs."""
    return [file for file, _ in _walk(entry, include_temp)]


def _walk(entry: Any, include_temp: bool) -> Iterator[tuple[OutputFile, Item]]:
    outputs = entry.get("outputs") if isinstance(entry, dict) else None
    kinds = ("output", "temp") if include_temp else ("output",)
    for node_id, node_output in outputs.items() if isinstance(outputs, dict) else []:
        for kind, items in node_output.items() if isinstance(node_output, dict) else []:
            for index, item in enumerate(items if isinstance(items, list) else []):
                if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
                    continue
                type_ = str(item.get("type") or "output")
                subfolder = from_client_subfolder(str(item.get("subfolder") or "")).subfolder
                if type_ in kinds:
                    yield OutputFile(node_id, kind, index, item["filename"], subfolder, type_), item


def with_items(entry: Any, change: Callable[[OutputFile, Item], Item], include_temp: bool) -> Any:
    """A copy of `entry` with `change` applied to each file item it names."""
    if not isinstance(entry, dict) or not isinstance(entry.get("outputs"), dict):
        return entry
    changed = {
        (f.node_id, f.kind, f.index): change(f, item) for f, item in _walk(entry, include_temp)
    }
    if not changed:
        return entry
    outputs = {
        node_id: {
            kind: [changed.get((node_id, kind, i), item) for i, item in enumerate(items)]
            if isinstance(items, list)
            else items
            for kind, items in node_output.items()
        }
        if isinstance(node_output, dict)
        else node_output
        for node_id, node_output in entry["outputs"].items()
    }
    return {**entry, "outputs": outputs}


def stored_keys(entry: Any) -> Iterator[tuple[Item, str]]:
    """(item, key) of every item the sink stored."""
    outputs = entry.get("outputs") if isinstance(entry, dict) else None
    for node_output in outputs.values() if isinstance(outputs, dict) else []:
        for items in node_output.values() if isinstance(node_output, dict) else []:
            for item in items if isinstance(items, list) else []:
                if (
                    isinstance(item, dict)
                    and item.get("stored")
                    and isinstance(item.get("key"), str)
                ):
                    yield item, item["key"]
