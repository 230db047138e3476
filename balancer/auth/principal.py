"""Who is calling: a key's name and scope, or anonymous (no keys configured)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from balancer.config.access_settings import ApiKey

Scope = Literal["client", "admin", "anonymous"]


@dataclass(frozen=True)
class Principal:
    name: str | None
    scope: Scope
    key: ApiKey | None = None

    @property
    def sees_all(self) -> bool:
        """Admin keys and anonymous callers (no keys configured) see every job."""
        return self.scope != "client"

    @property
    def tenant(self) -> str | None:
        """What jobs submitted by this caller belong to."""
        return self.name

    def may_see(self, owner: str | None) -> bool:
        return self.sees_all or (owner is not None and owner == self.name)


ANONYMOUS = Principal(None, "anonymous")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal:
    found: Principal = request.get(PRINCIPAL, ANONYMOUS)
    return found


def is_admin_key(request: web.Request) -> bool:
    return principal_of(request).scope == "admin"


def presented_key(request: web.Request) -> str | None:
    """`Authorization: Bearer <key>`, `X-API-Key`, or `?token=` (sockets, <img>)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key") or request.query.get("token") or None


class KeyRing:
    """Matches a presented key against every configured digest in constant
    time: all are compared, whichever matched, so timing says nothing."""

    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self.keys = keys

    def __bool__(self) -> bool:
        return bool(self.keys)

    def named(self, name: str) -> ApiKey | None:
        return next((key for key in self.keys if key.name == name), None)

    def match(self, presented: str) -> ApiKey | None:
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found
