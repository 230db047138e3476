"""Settings of who may do what: the admin token, API keys and browser sessions,
and the origins browsers may call from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class AdminSettings:
    # With a token, /balancer/backends... need `Authorization: Bearer <token>`;
    # without one they answer loopback peers only.
    token: str | None = None


KeyScope = Literal["client", "admin"]


@dataclass(frozen=True)
class ApiKey:
    """One API key: only its SHA-256 is kept (never the key itself)."""

    name: str
    sha256: bytes = field(repr=False)
    scope: KeyScope = "client"
    # Token bucket: `rate` prompts per second, up to `burst` at once.
    rate: float | None = None
    burst: int | None = None
    # Jobs of this key that may wait or run at once; more get 429.
    max_queued: int | None = None


@dataclass(frozen=True)
class AuthSettings:
    """Access control (balancer.auth). No keys: everyone is anonymous."""

    keys: tuple[ApiKey, ...] = ()
    # Without keys, listening on a non-loopback address needs this.
    allow_anonymous: bool = False
    # /metrics, /balancer and /balancer/status open to everyone.
    public_status: bool = True
    # How long a browser sign-in (the session cookie) lasts.
    session_ttl: float = 12 * 3600.0
    # HMAC key for session cookies, from `{env: VAR}`; None: generated once
    # and kept in `<data_dir>/session_secret`.
    session_secret: bytes | None = field(default=None, repr=False)
    # Peers (addresses or networks) whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class CorsSettings:
    # Origins (scheme://host[:port]) browsers may call from; empty: none.
    origins: tuple[str, ...] = ()
