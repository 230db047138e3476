"""The balancer answers the user-data routes itself (/users, /settings*,
/userdata*, /v2/userdata) from its user-data store (`<data_dir>/user`, or
Redis with several replicas), with ComfyUI's semantics, so settings and
saved workflows stay put whichever backend is up or primary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from balancer.auth.principal import principal_of
from balancer.proxy.file_context import files_of
from balancer.userdata import UserDataRoutes
from balancer.userdata.model import DEFAULT_USER, UserData

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def user_files(request: web.Request) -> UserData:
    """A client key's own files (the tenant's); admin keys and anonymous
    callers (no keys) share `default`, as ComfyUI's single user."""
    principal = principal_of(request)
    shared = principal.sees_all or principal.name is None
    return files_of(request).user_data(DEFAULT_USER if shared else str(principal.name))


def user_data_routes() -> list[tuple[str, str, Handler]]:
    """(method, bare path, handler); served at the bare path and under /api."""
    return UserDataRoutes(user_files).table()
