"""The user-data routes with ComfyUI 0.3.64's statuses and bodies.

`files_of(request)` says whose files a request reads and writes (the
balancer: `<data_dir>/user/<user>/`, one directory per tenant). Every route
is served at its bare path and under `/api`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from balancer import client_json
from balancer.userdata.store import PathRefused, UserFiles

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FilesOf = Callable[[web.Request], UserFiles]


def _flag(request: web.Request, name: str, default: str = "") -> bool:
    return request.query.get(name, default).lower() == "true"


class UserDataRoutes:
    def __init__(self, files_of: FilesOf) -> None:
        self.files_of = files_of

    def table(self) -> list[tuple[str, str, Handler]]:
        """(method, bare path, handler) for every user-data route."""
        return [
            ("GET", "/users", self.get_users),
            ("POST", "/users", self.post_users),
            ("GET", "/settings", self.get_settings),
            ("POST", "/settings", self.post_settings),
            ("GET", "/settings/{id}", self.get_setting),
            ("POST", "/settings/{id}", self.post_setting),
            ("GET", "/userdata", self.list_userdata),
            ("GET", "/v2/userdata", self.list_userdata_v2),
            ("GET", "/userdata/{file}", self.get_file),
            ("POST", "/userdata/{file}", self.post_file),
            ("DELETE", "/userdata/{file}", self.delete_file),
            ("POST", "/userdata/{file}/move/{dest}", self.move_file),
        ]

    def files(self, request: web.Request) -> UserFiles:
        return self.files_of(request)

    # -- users and settings ---------------------------------------------------
    async def get_users(self, request: web.Request) -> web.Response:
        return web.json_response({"storage": "server", "migrated": self.files(request).migrated()})

    async def post_users(self, request: web.Request) -> web.Response:
        try:
            body = client_json.parse(await request.read())
            user_id = self.files(request).add_user(str(body["username"]))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if user_id is None:
            return web.json_response({"error": "Duplicate username."}, status=400)
        return web.json_response(user_id)

    async def get_settings(self, request: web.Request) -> web.Response:
        return web.json_response(self.files(request).settings())

    async def get_setting(self, request: web.Request) -> web.Response:
        settings = self.files(request).settings()
        return web.json_response(settings.get(request.match_info["id"]))

    async def post_settings(self, request: web.Request) -> web.Response:
        files = self.files(request)
        try:
            new = await _json_body(request)
        except ValueError:
            return web.Response(status=400)
        if not isinstance(new, dict):
            return web.Response(status=400)
        files.save_settings({**files.settings(), **new})
        return web.Response(status=200)

    async def post_setting(self, request: web.Request) -> web.Response:
        setting_id = request.match_info.get("id", "")
        if not setting_id:
            return web.Response(status=400)
        files = self.files(request)
        settings = files.settings()
        try:
            settings[setting_id] = await _json_body(request)
        except ValueError:
            return web.Response(status=400)
        files.save_settings(settings)
        return web.Response(status=200)

    # -- listings ---------------------------------------------------------------
    async def list_userdata(self, request: web.Request) -> web.Response:
        directory = request.query.get("dir", "")
        if not directory:
            return web.Response(status=400, text="Directory not provided")
        files = self.files(request)
        try:
            path = files.resolve(directory)
        except PathRefused:
            return web.Response(status=403, text="Invalid directory")
        if not os.path.exists(path):
            return web.Response(status=404, text="Directory not found")
        listing = files.listing(
            path,
            recurse=_flag(request, "recurse"),
            full_info=_flag(request, "full_info"),
            split=_flag(request, "split"),
        )
        return web.json_response(listing)

    async def list_userdata_v2(self, request: web.Request) -> web.Response:
        files = self.files(request)
        try:
            target = files.resolve(unquote(request.query.get("path", "")))
        except PathRefused:
            return web.Response(status=403, text="Invalid path requested")
        if not os.path.exists(target):
            return web.Response(status=404, text="Requested path not found")
        if not os.path.isdir(target):
            return web.Response(status=400, text="Requested path is not a directory")
        try:
            return web.json_response(files.listing_v2(target))
        except OSError:
            return web.Response(status=500, text="Error reading directory contents")

    # -- files --------------------------------------------------------------------
    def _path(
        self, request: web.Request, files: UserFiles, *, must_exist: bool, param: str = "file"
    ) -> str | web.Response:
        name = request.match_info.get(param, "")
        if not name:
            return web.Response(status=400)
        try:
            path = files.resolve(name)
        except PathRefused:
            return web.Response(status=403)
        if must_exist and not os.path.exists(path):
            return web.Response(status=404)
        return path

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request, self.files(request), must_exist=True)
        if not isinstance(path, str):
            return path
        if os.path.isdir(path):
            return web.Response(status=404)
        return web.FileResponse(path)

    async def post_file(self, request: web.Request) -> web.Response:
        files = self.files(request)
        path = self._path(request, files, must_exist=False)
        if not isinstance(path, str):
            return path
        if request.query.get("overwrite", "true") == "false" and os.path.exists(path):
            return web.Response(status=409, text="File already exists")
        try:
            files.write(path, await request.read())
        except OSError:
            return web.Response(
                status=400,
                reason='Invalid filename. Please avoid special characters like :\\/*?"<>|',
            )
        return web.json_response(files.relative(path, _flag(request, "full_info", "false")))

    async def delete_file(self, request: web.Request) -> web.Response:
        files = self.files(request)
        path = self._path(request, files, must_exist=True)
        if not isinstance(path, str):
            return path
        files.delete(path)
        return web.Response(status=204)

    async def move_file(self, request: web.Request) -> web.Response:
        files = self.files(request)
        source = self._path(request, files, must_exist=True)
        if not isinstance(source, str):
            return source
        dest = self._path(request, files, must_exist=False, param="dest")
        if not isinstance(dest, str):
            return dest
        if request.query.get("overwrite", "true") == "false" and os.path.exists(dest):
            return web.Response(status=409, text="File already exists")
        files.move(source, dest)
        return web.json_response(files.relative(dest, _flag(request, "full_info", "false")))


async def _json_body(request: web.Request) -> object:
    """The JSON body; ValueError when it is not JSON."""
    return client_json.parse(await request.read())
