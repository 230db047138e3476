"""The balancer answers the user-data routes itself (/users, /settings*,
/userdata*, /v2/userdata) from `<data_dir>/user`, with ComfyUI's semantics,
so settings and saved workflows stay put whichever backend is up or primary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from balancer.auth.principal import principal_of
from balancer.proxy.context import ctx
from balancer.userdata import UserDataRoutes, UserFiles

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def user_files(request: web.Request) -> UserFiles:
    """A client key's own directory, `<data_dir>/user/<tenant>/`; admin keys
    and anonymous callers (no keys) share `default`, as ComfyUI's single user."""
    root = Path(ctx(request).settings.data_dir) / "user"
    principal = principal_of(request)
    if principal.sees_all or principal.name is None:
        return UserFiles(root)
    return UserFiles(root, principal.name)


def user_data_routes() -> list[tuple[str, str, Handler]]:
    """(method, bare path, handler); served at the bare path and under /api."""
    return UserDataRoutes(user_files).table()
