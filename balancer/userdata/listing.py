"""User-data listings computed from an index of files (path -> size and
times), as ComfyUI computes them from a directory: the Redis store keeps
such an index per user. Directories are the folders its files are in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from balancer.userdata.model import JSON, Kind


@dataclass(frozen=True)
class Meta:
    size: int
    modified: float
    created: float

    def encode(self) -> str:
        return f"{self.size} {self.modified!r} {self.created!r}"

    @classmethod
    def decode(cls, text: bytes | str) -> Meta:
        size, modified, created = (text.decode() if isinstance(text, bytes) else text).split()
        return cls(int(size), float(modified), float(created))


Index = Mapping[str, Meta]


def kind_of(index: Index, rel: str) -> Kind | None:
    """A file, a folder some file is in, or nothing ('' is the user's own)."""
    if rel in index:
        return "file"
    prefix = f"{rel}/" if rel else ""
    return "dir" if any(path.startswith(prefix) for path in index) else None


def info(path: str, meta: Meta) -> JSON:
    """ComfyUI's FileInfo of a file, `path` relative to the listed folder."""
    return {"path": path, "size": meta.size, "modified": meta.modified, "created": meta.created}


def listing(index: Index, rel: str, *, recurse: bool, full_info: bool, split: bool) -> list[Any]:
    """GET /userdata?dir=: the files in `rel` (and below, `recurse`), by
    path; names starting with `.` are skipped, as glob skips them."""
    base = f"{rel}/" if rel else ""
    results: list[Any] = []
    for path in sorted(index):
        if not path.startswith(base):
            continue
        name = path[len(base) :]
        parts = name.split("/")
        if (len(parts) > 1 and not recurse) or any(p.startswith(".") for p in parts):
            continue
        if full_info:
            results.append(info(name, index[path]))
        else:
            results.append([name, *parts] if split else name)
    return results


def listing_v2(index: Index, rel: str) -> list[JSON]:
    """GET /v2/userdata?path=: every folder and file below `rel`, paths from
    the user's directory, folders first, then by name."""
    base = f"{rel}/" if rel else ""
    folders: set[str] = set()
    entries: list[JSON] = []
    for path, meta in index.items():
        if not path.startswith(base):
            continue
        parts = path[len(base) :].split("/")
        folders.update(base + "/".join(parts[:i]) for i in range(1, len(parts)))
        entry = {"name": parts[-1], "path": path, "type": "file"}
        entries.append({**entry, "size": meta.size, "modified": meta.modified})
    for folder in folders:
        entries.append({"name": folder.rpartition("/")[2], "path": folder, "type": "directory"})
    return sort_v2(entries)


def sort_v2(entries: list[JSON]) -> list[JSON]:
    """/v2/userdata's order: directories first, then by name, case-insensitive."""
    return sorted(entries, key=lambda e: (e["type"] != "directory", str(e["name"]).lower()))
