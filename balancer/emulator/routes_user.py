"""/users, /settings*, /userdata*, /v2/userdata under `<base_dir>/user`, single-user,
with ComfyUI 0.3.64's semantics (the same code the balancer answers them with)."""

from __future__ import annotations

from aiohttp import web

from balancer.userdata import UserDataRoutes

from .emulator import Emulator


def add_user_routes(emulator: Emulator, routes: web.RouteTableDef) -> None:
    user_dir = emulator.dirs.base / "user"
    for method, path, handler in UserDataRoutes(lambda request: user_dir).table():
        if method == "GET":
            routes.get(path)(handler)
        else:
            routes.route(method, path)(handler)
