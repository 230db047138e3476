"""What the user-data routes ask of a store, and how a name a client sends
becomes the one path inside a user's directory that the store is asked for.

`canonical` is ComfyUI's check (a name with `%` is URL-decoded once more,
then joined to the user's directory and normalised; anything that leaves
it is refused) done once, on strings: the store of one balancer
(`store.py`, files) and the replicas' store (`redis_store.py`) both take
its result, so the check and the I/O can never see two different paths.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote

DEFAULT_USER = "default"
SETTINGS_FILE = "comfy.settings.json"
JSON = dict[str, Any]
Kind = Literal["file", "dir"]
_ROOT = "/user"


class PathRefused(ValueError):
    """The path would leave the user's directory (ComfyUI answers 403)."""


class WriteRefused(ValueError):
    """The path names a directory, or lies under a file (ComfyUI: 400)."""


def canonical(file: str) -> str:
    """The path of `file` inside the user's directory, `/`-separated and
    normalised ('' for the directory itself); PathRefused if it leaves it."""
    name = unquote(file) if "%" in file else file
    if "\x00" in name:
        raise PathRefused(file)
    path = posixpath.normpath(posixpath.join(_ROOT, name))
    if path != _ROOT and not path.startswith(_ROOT + "/"):
        raise PathRefused(file)
    return path[len(_ROOT) + 1 :]


class UserData(Protocol):
    """One user's files (`rel` is always a `canonical` path)."""

    async def migrated(self) -> bool:
        """Whether the user's directory exists (GET /users)."""
        ...

    async def add_user(self, name: str) -> str | None:
        """A new user id (`<sanitized>_<uuid4>`), or None for a duplicate name."""
        ...

    async def kind(self, rel: str) -> Kind | None: ...

    async def read(self, rel: str) -> Path | bytes | None:
        """A file's bytes (or its local path), None if it is not a file."""
        ...

    async def settings(self) -> JSON: ...

    async def update_settings(self, change: Callable[[JSON], JSON]) -> None:
        """Replace the settings with `change(settings)`, in one step."""
        ...

    async def listing(self, rel: str, *, recurse: bool, full_info: bool, split: bool) -> list[Any]:
        """GET /userdata?dir=: the files in a directory."""
        ...

    async def listing_v2(self, rel: str) -> list[JSON]:
        """GET /v2/userdata?path=: directories first, then files, by name."""
        ...

    async def write(self, rel: str, body: bytes) -> None:
        """Raises WriteRefused where a file cannot be."""
        ...

    async def delete(self, rel: str) -> None: ...

    async def move(self, source: str, dest: str) -> None:
        """Raises WriteRefused where the file cannot go."""
        ...

    async def describe(self, rel: str, full_info: bool) -> JSON | str:
        """A written file as ComfyUI answers it: its path, or its info."""
        ...


# Who the files of a request belong to: `default`, or a tenant's name.
UserDataOf = Callable[[str], UserData]
