"""ComfyUI 0.3.64's user directory (`app/user_manager.py`, `app/app_settings.py`),
single-user: every request is user "default", files under `<root>/default/`.

Paths are checked the way ComfyUI checks them: a name containing `%` is
URL-decoded once more, and anything that leaves the user's directory is refused.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

DEFAULT_USER = "default"
SETTINGS_FILE = "comfy.settings.json"
JSON = dict[str, Any]


class PathRefused(ValueError):
    """The path would leave the user's directory (ComfyUI answers 403)."""


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
    def __init__(self, root: Path, user: str = DEFAULT_USER) -> None:
        """`user` is a directory name under `root` (`default`, or a tenant's)."""
        self.root = os.path.abspath(root)
        self.user = user

    # -- users --------------------------------------------------------------
    @property
    def user_root(self) -> str:
        return os.path.join(self.root, self.user)

    def migrated(self) -> bool:
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

    def add_user(self, name: str) -> str | None:
        """A new user id (`<sanitized>_<uuid4>`), or None for a duplicate name."""
        users = self.users()
        if name in users.values():
            return None
        name = name.strip()
        if not name:
            raise ValueError("username not provided")
        user_id = re.sub("[^a-zA-Z0-9-_]+", "-", name) + "_" + str(uuid.uuid4())
        users[user_id] = name
        os.makedirs(self.root, exist_ok=True)
        _write_atomic(self.users_file(), json.dumps(users).encode())
        return user_id

    # -- paths ----------------------------------------------------------------
    def resolve(self, file: str | None, *, create_dir: bool = True) -> str:
        """The absolute path of `file` in the user's directory (ComfyUI's
        get_request_user_filepath); makes the parent directory like it does."""
        path = user_root = self.user_root
        if file is not None:
            if "%" in file:
                file = unquote(file)
            path = os.path.abspath(os.path.join(user_root, file))
            if os.path.commonpath((user_root, path)) != user_root:
                raise PathRefused(file)
        parent = os.path.split(path)[0]
        if create_dir and not os.path.exists(parent):
            os.makedirs(parent, exist_ok=True)
        return path

    def relative(self, path: str, full_info: bool) -> JSON | str:
        user_path = self.resolve(None)
        if full_info:
            return file_info(path, user_path)
        return os.path.relpath(path, user_path).replace(os.sep, "/")

    # -- settings -------------------------------------------------------------
    def settings(self) -> JSON:
        path = self.resolve(SETTINGS_FILE)
        if not os.path.isfile(path):
            return {}
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_settings(self, settings: JSON) -> None:
        path = self.resolve(SETTINGS_FILE)
        _write_atomic(path, json.dumps(settings, indent=4).encode())

    # -- listings ---------------------------------------------------------------
    def listing(self, path: str, *, recurse: bool, full_info: bool, split: bool) -> list[Any]:
        """GET /userdata?dir=: files only, glob order, as ComfyUI lists them."""
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
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            results.append([rel, *rel.split("/")] if split else rel)
        return results

    def listing_v2(self, target: str) -> list[JSON]:
        """GET /v2/userdata?path=: directories first, then files, by name."""
        base = self.resolve(None, create_dir=False)
        results: list[JSON] = []
        for root, dirs, files in os.walk(target, topdown=True):
            for name in dirs:
                rel = os.path.relpath(os.path.join(root, name), base).replace(os.sep, "/")
                results.append({"name": name, "path": rel, "type": "directory"})
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
        results.sort(key=lambda e: (e["type"] != "directory", str(e["name"]).lower()))
        return results

    # -- files --------------------------------------------------------------------
    def write(self, path: str, body: bytes) -> None:
        _write_atomic(path, body)

    def delete(self, path: str) -> None:
        os.remove(path)

    def move(self, source: str, dest: str) -> None:
        shutil.move(source, dest)


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
