"""Admin changes to the backends (add, remove, drain, undrain), for one
balancer or for every replica.

With several replicas a change is written to Redis first (Redis
unreachable: StoreUnavailable, a 503, and nothing changed anywhere), then applied here;
every other replica reads it within one probe interval (`follow`) and applies
the same. Applying is idempotent, so the replica that made a change reads it
back as nothing new.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from balancer.backends.drain import Drainer
from balancer.backends.registry import Registry
from balancer.backends.state import Backend
from balancer.config.backend_list import parse_backend
from balancer.config.backend_settings import BackendSettings
from balancer.config.errors import ConfigError
from balancer.logs import get_logger
from balancer.ops.membership import Membership
from balancer.replicas.changes import AdminState, BackendChanges
from balancer.replicas.outage import Outage, Sleep, repeat

log = get_logger("balancer.ops")


def _live(backend: Backend | None) -> bool:
    return backend is not None and "removed" not in backend.drain_reasons


class BackendAdmin:
    def __init__(
        self,
        registry: Registry,
        members: Membership,
        drainer: Drainer,
        shared: BackendChanges | None,
    ) -> None:
        self.registry = registry
        self.members = members
        self.drainer = drainer
        self.shared = shared

    async def add(self, body: dict[str, Any], settings: BackendSettings) -> Backend:
        """Raises ValueError when a backend of that name is registered."""
        if _live(self.registry.get(settings.name)):
            raise ValueError(f"backend {settings.name!r} already exists")
        if self.shared is not None:
            await self.shared.added(settings.name, body)
        return await self.members.add(settings)

    async def remove(self, name: str) -> Backend | None:
        if self.registry.get(name) is None:
            return None
        if self.shared is not None:
            await self.shared.removed(name)
        return await self.members.remove(name)

    async def drain(self, backend: Backend, drained: bool) -> None:
        if self.shared is not None:
            await self.shared.drained(backend.name, drained)
        self.drainer.set(backend, "manual", drained)

    async def apply(self, state: AdminState) -> None:
        """Another replica's changes: removals, then additions, then drains."""
        for name in sorted(state.removed):
            if _live(self.registry.get(name)):
                await self.members.remove(name)
        for name, body in state.added.items():
            if not _live(self.registry.get(name)):
                await self._add_shared(body)
        for name, drained in state.drained.items():
            backend = self.registry.get(name)
            if backend is not None:
                self.drainer.set(backend, "manual", drained)

    async def _add_shared(self, body: dict[str, Any]) -> None:
        try:
            settings = parse_backend(body)
        except ConfigError as exc:
            log.warning("backend_change_invalid", errors=exc.errors)
            return
        await self.members.add(settings)


class Following:
    """Applies the other replicas' admin changes: every probe interval
    (`run`), or now (`catch_up`). One round at a time, so a caller of
    `catch_up` returns only once every change read so far is applied."""

    def __init__(self, changes: BackendChanges, admin: BackendAdmin) -> None:
        self.changes = changes
        self.admin = admin
        self._one_round = asyncio.Lock()

    async def catch_up(self) -> None:
        """Raises RedisError (then the next round reads the changes)."""
        async with self._one_round:
            state = await self.changes.news()
            if state is not None:
                await self.admin.apply(state)

    async def run(self, interval: Callable[[], float], sleep: Sleep = asyncio.sleep) -> None:
        """Until cancelled; Redis away, the next round reads the changes."""
        await repeat(self.catch_up, interval, Outage("backend_changes_read"), sleep)
