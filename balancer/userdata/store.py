"""ComfyUI 0.3.64's user directory (`app/user_manager.py`, `app/app_settings.py`)
on disk, for a balancer that runs alone: user "default" (or a tenant's name),
files under `<root>/<user>/`. Several replicas keep user data in Redis
instead (`redis_store.py`).

Paths arrive canonical (`model.canonical`); as ComfyUI does, the parent
directory of a path is made when it is first used.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from balancer.userdata.listing import sort_v2
from balancer.userdata.model import DEFAULT_USER, JSON, SETTINGS_FILE, Kind, WriteRefused


def file_info(path: str, relative_to: str) -> JSON:
    """0.3.64's FileInfo: float seconds for the times."""
    stat = os.stat(path)
    return {
        "path": os.path.relpath(path, relative_to).replace(os.sep, "/"),
        "size": stat.st_size,
        "modified": stat.st_mtime,
        "created": stat.st_ctime,
    }


class UserFiles:
    """`UserData` in `<root>/<user>/`."""

    def __init__(self, root: Path, user: str = DEFAULT_USER) -> None:
        """`user` is a directory name under `root` (`default`, or a tenant's)."""
        self.root = os.path.abspath(root)
        self.user = user

    @property
    def user_root(self) -> str:
        return os.path.join(self.root, self.user)

    def path(self, rel: str, *, create_dir: bool = True) -> str:
        """The absolute path of canonical `rel`; makes its parent directory
        as ComfyUI's get_request_user_filepath does."""
        path = os.path.join(self.user_root, rel) if rel else self.user_root
        parent = os.path.split(path)[0]
        if create_dir and not os.path.exists(parent):
            os.makedirs(parent, exist_ok=True)
        return path

    # -- users --------------------------------------------------------------
    async def migrated(self) -> bool:
        return os.path.exists(self.user_root)

    def users_file(self) -> str:
        return os.path.join(self.root, "users.json")

    def users(self) -> dict[str, str]:
        try:
            with open(self.users_file(), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    async def add_user(self, name: str) -> str | None:
        users = self.users()
        if name in users.values():
            return None
        name = name.strip()
        if not name:
            raise ValueError("username not provided")
        user_id = new_user_id(name)
        users[user_id] = name
        os.makedirs(self.root, exist_ok=True)
        _write_atomic(self.users_file(), json.dumps(users).encode())
        return user_id

    # -- files ----------------------------------------------------------------
    async def kind(self, rel: str) -> Kind | None:
        path = self.path(rel)
        if os.path.isdir(path):
            return "dir"
        return "file" if os.path.exists(path) else None

    async def read(self, rel: str) -> Path | None:
        path = self.path(rel)
        return Path(path) if os.path.isfile(path) else None

    async def describe(self, rel: str, full_info: bool) -> JSON | str:
        if full_info:
            return file_info(self.path(rel), self.path(""))
        return rel

    async def write(self, rel: str, body: bytes) -> None:
        try:
            _write_atomic(self.path(rel), body)
        except OSError as exc:
            raise WriteRefused(rel) from exc

    async def delete(self, rel: str) -> None:
        os.remove(self.path(rel))

    async def move(self, source: str, dest: str) -> None:
        try:
            shutil.move(self.path(source), self.path(dest))
        except OSError as exc:
            raise WriteRefused(dest) from exc

    # -- settings -------------------------------------------------------------
    async def settings(self) -> JSON:
        path = self.path(SETTINGS_FILE)
        if not os.path.isfile(path):
            return {}
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    async def update_settings(self, change: Callable[[JSON], JSON]) -> None:
        """One process, and nothing awaited between the read and the write."""
        new = change(await self.settings())
        _write_atomic(self.path(SETTINGS_FILE), settings_bytes(new))

    # -- listings ---------------------------------------------------------------
    async def listing(self, rel: str, *, recurse: bool, full_info: bool, split: bool) -> list[Any]:
        """Files only, glob order, as ComfyUI lists them."""
        path = self.path(rel)
        pattern = (
            os.path.join(glob.escape(path), "**", "*")
            if recurse
            else os.path.join(glob.escape(path), "*")
        )
        results: list[Any] = []
        for full in glob.glob(pattern, recursive=recurse):
            if not os.path.isfile(full):
                continue
            if full_info:
                results.append(file_info(full, path))
                continue
            name = os.path.relpath(full, path).replace(os.sep, "/")
            results.append([name, *name.split("/")] if split else name)
        return results

    async def listing_v2(self, rel: str) -> list[JSON]:
        base = self.path("", create_dir=False)
        results: list[JSON] = []
        for root, dirs, files in os.walk(self.path(rel), topdown=True):
            for name in dirs:
                path = os.path.relpath(os.path.join(root, name), base).replace(os.sep, "/")
                results.append({"name": name, "path": path, "type": "directory"})
            for name in files:
                full = os.path.join(root, name)
                entry: JSON = {
                    "name": name,
                    "path": os.path.relpath(full, base).replace(os.sep, "/"),
                    "type": "file",
                }
                try:
                    stat = os.stat(full)
                    entry["size"] = stat.st_size
                    entry["modified"] = stat.st_mtime
                except OSError:
                    pass
                results.append(entry)
        return sort_v2(results)


def new_user_id(name: str) -> str:
    """ComfyUI's user id: the name made path-safe, then a uuid4."""
    return re.sub("[^a-zA-Z0-9-_]+", "-", name) + "_" + str(uuid.uuid4())


def settings_bytes(settings: JSON) -> bytes:
    """The settings file as ComfyUI writes it."""
    return json.dumps(settings, indent=4).encode()


def _write_atomic(path: str, body: bytes) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
