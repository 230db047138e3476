"""Collision-free output names across backends.

Every ComfyUI instance writes `ComfyUI_00001_.png`, so the same
(filename, subfolder, type) exists on several backends. The balancer hands
clients a `subfolder` with a virtual prefix naming the backend that holds the
file (`@gpu0`, or `@gpu0/sub` for a real subfolder `sub`). Clients echo
`subfolder` back in `/view`, so the prefix routes the request and is stripped
before it reaches the backend. Backend names are `[A-Za-z0-9_-]`, so the
prefix is safe in URLs and paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREFIX = "@"
# Output kinds that live on the backend that ran the job.
BACKEND_FILE_TYPES = frozenset({"output", "temp"})


def to_client_subfolder(backend: str, subfolder: str) -> str:
    return f"{PREFIX}{backend}/{subfolder}" if subfolder else f"{PREFIX}{backend}"


@dataclass(frozen=True)
class ClientSubfolder:
    backend: str | None
    subfolder: str


def from_client_subfolder(subfolder: str) -> ClientSubfolder:
    """Split a client-echoed subfolder into (backend, the backend's subfolder)."""
    if not subfolder.startswith(PREFIX):
        return ClientSubfolder(None, subfolder)
    head, _, rest = subfolder[len(PREFIX) :].partition("/")
    return ClientSubfolder(head, rest)


def rewrite_file_item(backend: str, item: Any) -> Any:
    """Give one `{filename, subfolder, type}` item its backend prefix."""
    if (
        isinstance(item, dict)
        and isinstance(item.get("filename"), str)
        and item.get("type", "output") in BACKEND_FILE_TYPES
    ):
        subfolder = item.get("subfolder") or ""
        if isinstance(subfolder, str):
            return {**item, "subfolder": to_client_subfolder(backend, subfolder)}
    return item


def rewrite_ui_output(backend: str, output: Any) -> Any:
    """Rewrite every file item in one node's UI output (`images`, `gifs`,
    `audio`, `video` and custom keys alike)."""
    if not isinstance(output, dict):
        return output
    return {
        key: [rewrite_file_item(backend, item) for item in value]
        if isinstance(value, list)
        else value
        for key, value in output.items()
    }


def rewrite_history_entry(backend: str, entry: Any) -> Any:
    """Prefix the outputs of one `/history` entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("outputs"), dict):
        return entry
    outputs = {node: rewrite_ui_output(backend, out) for node, out in entry["outputs"].items()}
    return {**entry, "outputs": outputs}
