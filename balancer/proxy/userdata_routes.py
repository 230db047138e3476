"""The balancer answers the user-data routes itself (/users, /settings*,
/userdata*, /v2/userdata) from `<data_dir>/user`, with ComfyUI's semantics,
so settings and saved workflows stay put whichever backend is up or primary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from balancer.proxy.context import ctx
from balancer.userdata import UserDataRoutes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def user_dir(request: web.Request) -> Path:
    return Path(ctx(request).settings.data_dir) / "user"


def user_data_routes() -> list[tuple[str, str, Handler]]:
    """(method, bare path, handler); served at the bare path and under /api."""
    return UserDataRoutes(user_dir).table()
