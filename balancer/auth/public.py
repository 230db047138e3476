"""Which routes answer without an API key: an allow-list of the matched
route, never a test on the raw path (`/balancer/backends/../../history`
matches the pass-through, which needs a key like every route not named here).
"""

from __future__ import annotations

import re
from typing import Literal

from aiohttp import web

RouteAccess = Literal["open", "status", "admin", "sign_in", "key"]

# Resource patterns (aiohttp's `canonical`) and who may call them without a key.
PUBLIC_ROUTES: dict[str, RouteAccess] = {
    "/balancer/health": "open",
    "/balancer/ready": "open",
    # The sign-in pages read the session cookie themselves and forward nothing.
    "/balancer/login": "sign_in",
    "/balancer/logout": "sign_in",
    "/balancer": "status",
    "/balancer/": "status",
    "/balancer/status": "status",
    "/metrics": "status",
    # The admin API checks its own token (or an admin-scope key).
    "/balancer/backends": "admin",
    "/balancer/backends/{name}": "admin",
    "/balancer/backends/{name}/drain": "admin",
    "/balancer/backends/{name}/undrain": "admin",
}


def route_access(request: web.Request) -> RouteAccess:
    """How the route this request matched is guarded; "key" unless named above."""
    route = request.match_info.route
    resource = route.resource
    if resource is None or route.method == "*":
        return "key"
    return PUBLIC_ROUTES.get(resource.canonical, "key")


# With keys on, only admin-scope keys may call these: backend-wide state that
# spans tenants (every tenant's output listing, logs, model unloading, the
# emulator's fault controls).
ADMIN_PREFIXES = ("/internal", "/_emulator")
ADMIN_ROUTES = frozenset({("POST", "/free"), ("POST", "/api/free")})


def needs_admin(request: web.Request) -> bool:
    """Whether only an admin-scope key may make this request."""
    resource = request.match_info.route.resource
    if resource is not None and (request.method, resource.canonical) in ADMIN_ROUTES:
        return True
    path = re.sub("/+", "/", request.path)
    path = path[len("/api") :] if path.startswith("/api/") else path
    return any(path == p or path.startswith(p + "/") for p in ADMIN_PREFIXES)
