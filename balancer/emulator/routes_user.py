"""/users, /settings*, /userdata*, /v2/userdata under `<base_dir>/user`, as
ComfyUI 0.3.64 answers them without `--multi-user`: every request is user
`default`, files live in `user/default/`, writes go straight to the file.

A name with `%` in it is URL-decoded once more (the frontend sends `%2F` for
`/`); a path that leaves `user/default/` is 403; a missing file or directory
404; `overwrite=false` on an existing file 409.
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

from aiohttp import web

from .emulator import Emulator

SETTINGS = "comfy.settings.json"


class Refused(Exception):
    """The path escapes the user's directory."""


def _true(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() == "true"


def _rel(path: str, base: str) -> str:
    return os.path.relpath(path, base).replace(os.sep, "/")


def _stat(path: str, base: str) -> dict[str, Any]:
    info = os.stat(path)
    return {
        "path": _rel(path, base),
        "size": info.st_size,
        "modified": info.st_mtime,
        "created": info.st_ctime,
    }


class UserRoutes:
    def __init__(self, root: Path) -> None:
        self.root = os.path.abspath(root)
        self.home = os.path.join(self.root, "default")

    def add_to(self, routes: web.RouteTableDef) -> None:
        routes.get("/users")(self.users)
        routes.post("/users")(self.new_user)
        routes.get("/settings")(self.all_settings)
        routes.post("/settings")(self.merge_settings)
        routes.get("/settings/{id}")(self.one_setting)
        routes.post("/settings/{id}")(self.set_setting)
        routes.get("/userdata")(self.listing)
        routes.get("/v2/userdata")(self.listing_v2)
        routes.get("/userdata/{file}")(self.read)
        routes.post("/userdata/{file}")(self.write)
        routes.delete("/userdata/{file}")(self.delete)
        routes.post("/userdata/{file}/move/{dest}")(self.move)

    def path(self, name: str) -> str:
        """`name` inside the user's directory (its parent made, as ComfyUI does)."""
        name = unquote(name) if "%" in name else name
        full = os.path.abspath(os.path.join(self.home, name))
        if os.path.commonpath((self.home, full)) != self.home:
            raise Refused(name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    # -- users and settings ----------------------------------------------------
    async def users(self, request: web.Request) -> web.Response:
        return web.json_response({"storage": "server", "migrated": os.path.isdir(self.home)})

    async def new_user(self, request: web.Request) -> web.Response:
        try:
            name = str((await request.json())["username"]).strip()
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        users_file = os.path.join(self.root, "users.json")
        users = json.loads(Path(users_file).read_text()) if os.path.isfile(users_file) else {}
        if name in users.values():
            return web.json_response({"error": "Duplicate username."}, status=400)
        user_id = f"{re.sub('[^a-zA-Z0-9-_]+', '-', name)}_{uuid.uuid4()}"
        users[user_id] = name
        os.makedirs(self.root, exist_ok=True)
        Path(users_file).write_text(json.dumps(users))
        return web.json_response(user_id)

    def _settings(self) -> dict[str, Any]:
        path = self.path(SETTINGS)
        data = json.loads(Path(path).read_text()) if os.path.isfile(path) else {}
        return data if isinstance(data, dict) else {}

    def _save_settings(self, settings: dict[str, Any]) -> web.Response:
        Path(self.path(SETTINGS)).write_text(json.dumps(settings, indent=4))
        return web.Response()

    async def all_settings(self, request: web.Request) -> web.Response:
        return web.json_response(self._settings())

    async def one_setting(self, request: web.Request) -> web.Response:
        return web.json_response(self._settings().get(request.match_info["id"]))

    async def merge_settings(self, request: web.Request) -> web.Response:
        try:
            new = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400)
        if not isinstance(new, dict):
            return web.Response(status=400)
        return self._save_settings({**self._settings(), **new})

    async def set_setting(self, request: web.Request) -> web.Response:
        settings = self._settings()
        try:
            settings[request.match_info["id"]] = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400)
        return self._save_settings(settings)

    # -- listings --------------------------------------------------------------
    async def listing(self, request: web.Request) -> web.Response:
        directory = request.query.get("dir", "")
        if not directory:
            return web.Response(status=400, text="Directory not provided")
        try:
            base = self.path(directory)
        except Refused:
            return web.Response(status=403, text="Invalid directory")
        if not os.path.exists(base):
            return web.Response(status=404, text="Directory not found")
        recurse = _true(request, "recurse")
        pattern = os.path.join(glob.escape(base), "**", "*") if recurse else f"{base}/*"
        found = [p for p in glob.glob(pattern, recursive=recurse) if os.path.isfile(p)]
        if _true(request, "full_info"):
            return web.json_response([_stat(p, base) for p in found])
        names = [_rel(p, base) for p in found]
        if _true(request, "split"):
            return web.json_response([[name, *name.split("/")] for name in names])
        return web.json_response(names)

    async def listing_v2(self, request: web.Request) -> web.Response:
        try:
            target = self.path(unquote(request.query.get("path", "")))
        except Refused:
            return web.Response(status=403, text="Invalid path requested")
        if not os.path.exists(target):
            return web.Response(status=404, text="Requested path not found")
        if not os.path.isdir(target):
            return web.Response(status=400, text="Requested path is not a directory")
        entries: list[dict[str, Any]] = []
        for top, dirs, files in os.walk(target):
            for name in dirs:
                rel = _rel(os.path.join(top, name), self.home)
                entries.append({"name": name, "path": rel, "type": "directory"})
            for name in files:
                full = os.path.join(top, name)
                info = os.stat(full)
                entries.append(
                    {
                        "name": name,
                        "path": _rel(full, self.home),
                        "type": "file",
                        "size": info.st_size,
                        "modified": info.st_mtime,
                    }
                )
        entries.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
        return web.json_response(entries)

    # -- files -----------------------------------------------------------------
    def _target(self, request: web.Request, key: str = "file") -> str | web.Response:
        try:
            return self.path(request.match_info[key])
        except Refused:
            return web.Response(status=403)

    def _answer(self, request: web.Request, path: str) -> web.Response:
        if _true(request, "full_info"):
            return web.json_response(_stat(path, self.home))
        return web.json_response(_rel(path, self.home))

    async def read(self, request: web.Request) -> web.StreamResponse:
        path = self._target(request)
        if not isinstance(path, str):
            return path
        if not os.path.isfile(path):
            return web.Response(status=404)
        return web.FileResponse(path)

    async def write(self, request: web.Request) -> web.Response:
        path = self._target(request)
        if not isinstance(path, str):
            return path
        if request.query.get("overwrite") == "false" and os.path.exists(path):
            return web.Response(status=409, text="File already exists")
        Path(path).write_bytes(await request.read())
        return self._answer(request, path)

    async def delete(self, request: web.Request) -> web.Response:
        path = self._target(request)
        if not isinstance(path, str):
            return path
        if not os.path.exists(path):
            return web.Response(status=404)
        os.remove(path)
        return web.Response(status=204)

    async def move(self, request: web.Request) -> web.Response:
        source, dest = self._target(request), self._target(request, "dest")
        if not isinstance(source, str):
            return source
        if not isinstance(dest, str):
            return dest
        if not os.path.exists(source):
            return web.Response(status=404)
        if request.query.get("overwrite") == "false" and os.path.exists(dest):
            return web.Response(status=409, text="File already exists")
        shutil.move(source, dest)
        return self._answer(request, dest)


def add_user_routes(emulator: Emulator, routes: web.RouteTableDef) -> None:
    UserRoutes(emulator.dirs.base / "user").add_to(routes)
