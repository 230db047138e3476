"""The access-control state of one app: the key ring (rebuilt when a reload
changes `auth`), prompt and file owners, the keys' rate buckets, browser
sessions and the per-peer limit on sign-in attempts (per replica)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from balancer.auth.limits import Buckets, Clock, RateLimiter
from balancer.auth.owners import Owners
from balancer.auth.principal import KeyRing, Principal, principal_of
from balancer.auth.sessions import Sessions
from balancer.config.access_settings import AuthSettings
from balancer.config.settings import Settings


class Access:
    def __init__(
        self,
        settings: Callable[[], Settings],
        owners: Owners,
        clock: Clock,
        sessions: Sessions,
        rates: Buckets,
    ) -> None:
        self.settings = settings
        self.owners = owners
        self.rates = rates  # the keys' prompt rates (shared by replicas)
        self.sessions = sessions
        self.sign_ins = RateLimiter(clock)
        self._auth: AuthSettings | None = None
        self._ring = KeyRing(())

    def keyring(self) -> KeyRing:
        auth = self.settings().auth
        if auth is not self._auth:
            self._auth, self._ring = auth, KeyRing(auth.keys)
        return self._ring

    async def may_see(self, principal: Principal, prompt_id: str) -> bool:
        return principal.sees_all or principal.may_see(await self.owners.of(prompt_id))


ACCESS: web.AppKey[Access] = web.AppKey("access", Access)


def access_of(request: web.Request) -> Access:
    return request.app[ACCESS]


async def may_see(request: web.Request, prompt_id: str) -> bool:
    """Whether the caller may see or touch this prompt (unknown ids: no)."""
    principal = principal_of(request)
    return principal.sees_all or await access_of(request).may_see(principal, prompt_id)


Visible = Callable[[str], Awaitable[bool]]


def visible_ids(request: web.Request) -> Visible | None:
    """A filter on prompt_ids for this caller; None when it sees everything."""
    principal = principal_of(request)
    if principal.sees_all:
        return None
    access = access_of(request)
    return lambda prompt_id: access.may_see(principal, prompt_id)
