"""The user-data routes with ComfyUI 0.3.64's statuses and bodies.

`files_of(request)` says whose files a request reads and writes (the
balancer: `<data_dir>/user/<user>/`, one directory per tenant). Every route
is served at its bare path and under `/api`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from balancer import client_json
from balancer.userdata.model import PathRefused, UserData, WriteRefused, canonical

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FilesOf = Callable[[web.Request], UserData]
BAD_NAME = 'Invalid filename. Please avoid special characters like :\\/*?"<>|'


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

    def files(self, request: web.Request) -> UserData:
        return self.files_of(request)

    # -- users and settings ---------------------------------------------------
    async def get_users(self, request: web.Request) -> web.Response:
        migrated = await self.files(request).migrated()
        return web.json_response({"storage": "server", "migrated": migrated})

    async def post_users(self, request: web.Request) -> web.Response:
        try:
            body = client_json.parse(await request.read())
            user_id = await self.files(request).add_user(str(body["username"]))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if user_id is None:
            return web.json_response({"error": "Duplicate username."}, status=400)
        return web.json_response(user_id)

    async def get_settings(self, request: web.Request) -> web.Response:
        return web.json_response(await self.files(request).settings())

    async def get_setting(self, request: web.Request) -> web.Response:
        settings = await self.files(request).settings()
        return web.json_response(settings.get(request.match_info["id"]))

    async def post_settings(self, request: web.Request) -> web.Response:
        try:
            new = await _json_body(request)
        except ValueError:
            return web.Response(status=400)
        if not isinstance(new, dict):
            return web.Response(status=400)
        await self.files(request).update_settings(lambda old: {**old, **new})
        return web.Response(status=200)

    async def post_setting(self, request: web.Request) -> web.Response:
        setting_id = request.match_info.get("id", "")
        if not setting_id:
            return web.Response(status=400)
        try:
            value = await _json_body(request)
        except ValueError:
            return web.Response(status=400)
        await self.files(request).update_settings(lambda old: {**old, setting_id: value})
        return web.Response(status=200)

    # -- listings ---------------------------------------------------------------
    async def list_userdata(self, request: web.Request) -> web.Response:
        directory = request.query.get("dir", "")
        if not directory:
            return web.Response(status=400, text="Directory not provided")
        files = self.files(request)
        try:
            rel = canonical(directory)
        except PathRefused:
            return web.Response(status=403, text="Invalid directory")
        if await files.kind(rel) is None:
            return web.Response(status=404, text="Directory not found")
        listing = await files.listing(
            rel,
            recurse=_flag(request, "recurse"),
            full_info=_flag(request, "full_info"),
            split=_flag(request, "split"),
        )
        return web.json_response(listing)

    async def list_userdata_v2(self, request: web.Request) -> web.Response:
        files = self.files(request)
        try:
            rel = canonical(unquote(request.query.get("path", "")))
        except PathRefused:
            return web.Response(status=403, text="Invalid path requested")
        kind = await files.kind(rel)
        if kind is None:
            return web.Response(status=404, text="Requested path not found")
        if kind != "dir":
            return web.Response(status=400, text="Requested path is not a directory")
        try:
            return web.json_response(await files.listing_v2(rel))
        except OSError:
            return web.Response(status=500, text="Error reading directory contents")

    # -- files --------------------------------------------------------------------
    async def _rel(
        self, request: web.Request, files: UserData, *, must_exist: bool, param: str = "file"
    ) -> str | web.Response:
        """The canonical path a route parameter names, or ComfyUI's refusal."""
        name = request.match_info.get(param, "")
        if not name:
            return web.Response(status=400)
        try:
            rel = canonical(name)
        except PathRefused:
            return web.Response(status=403)
        if must_exist and await files.kind(rel) is None:
            return web.Response(status=404)
        return rel

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        files = self.files(request)
        rel = await self._rel(request, files, must_exist=False)
        if not isinstance(rel, str):
            return rel
        body = await files.read(rel)
        if body is None:  # missing, or a directory
            return web.Response(status=404)
        if isinstance(body, Path):
            return web.FileResponse(body)
        content_type = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        return web.Response(body=body, content_type=content_type)

    async def post_file(self, request: web.Request) -> web.Response:
        files = self.files(request)
        rel = await self._rel(request, files, must_exist=False)
        if not isinstance(rel, str):
            return rel
        overwrite = request.query.get("overwrite", "true") != "false"
        if not overwrite and await files.kind(rel) is not None:
            return web.Response(status=409, text="File already exists")
        try:
            await files.write(rel, await request.read())
        except WriteRefused:
            return web.Response(status=400, reason=BAD_NAME)
        return web.json_response(await files.describe(rel, _flag(request, "full_info", "false")))

    async def delete_file(self, request: web.Request) -> web.Response:
        files = self.files(request)
        rel = await self._rel(request, files, must_exist=False)
        if not isinstance(rel, str):
            return rel
        if await files.kind(rel) != "file":  # missing, or a directory
            return web.Response(status=404)
        await files.delete(rel)
        return web.Response(status=204)

    async def move_file(self, request: web.Request) -> web.Response:
        files = self.files(request)
        source = await self._rel(request, files, must_exist=True)
        if not isinstance(source, str):
            return source
        dest = await self._rel(request, files, must_exist=False, param="dest")
        if not isinstance(dest, str):
            return dest
        overwrite = request.query.get("overwrite", "true") != "false"
        if not overwrite and await files.kind(dest) is not None:
            return web.Response(status=409, text="File already exists")
        try:
            await files.move(source, dest)
        except WriteRefused:
            return web.Response(status=400, reason=BAD_NAME)
        return web.json_response(await files.describe(dest, _flag(request, "full_info", "false")))


async def _json_body(request: web.Request) -> Any:
    """The JSON body; ValueError when it is not JSON."""
    return client_json.parse(await request.read())
