"""Which backends the balancer fronts, changed while it runs (admin API, reload).

Adding starts the backend's channel; it takes prompts once probed up.
Removing drains it with reason `removed`; it leaves the registry once idle
(`balancer.backends.drain.is_idle`: its newest reading shows an empty queue,
nothing is on the way to it and no job is followed there; see
`balancer.ops.drain_end`), so pinned follow-ups of its last jobs still reach
it. A removed backend that is down leaves at once: nothing can reach it anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from balancer.backends.channel import Channels
from balancer.backends.drain import Drainer
from balancer.backends.registry import Registry
from balancer.backends.state import Backend
from balancer.config.backend_settings import BackendSettings
from balancer.logs import get_logger
from balancer.store import Store

log = get_logger("balancer.membership")


class Membership:
    def __init__(
        self,
        registry: Registry,
        channels: Channels,
        store: Store,
        drainer: Drainer,
        idle: Callable[[Backend], bool],
    ) -> None:
        self.registry = registry
        self.channels = channels
        self.store = store
        self.drainer = drainer
        self.idle = idle  # `drain.Idleness`

    async def add(self, settings: BackendSettings) -> Backend:
        """Register and start a backend; a removed one coming back is revived."""
        existing = self.registry.get(settings.name)
        if existing is not None:
            if "removed" not in existing.drain_reasons:
                raise ValueError(f"backend {settings.name!r} already exists")
            self.drainer.undrain(existing, "removed")
            return await self.update(settings)
        backend = self.registry.add(settings)
        self.drainer.apply_settings(backend)
        self.channels.start(backend)
        log.info("backend_added", backend=backend.name, url=backend.url)
        return backend

    async def update(self, settings: BackendSettings) -> Backend:
        """New settings; a new URL is a new server, so health starts over."""
        backend = self.registry.get(settings.name)
        if backend is None:
            raise KeyError(settings.name)
        moved = backend.url != settings.url
        if backend.settings != settings:
            self.registry.update(settings)
            log.info("backend_updated", backend=backend.name, url=settings.url)
        self.drainer.apply_settings(backend)
        if moved:
            backend.start_over()
            await self.channels.stop(backend.name)
            self.channels.start(backend)
        return backend

    async def remove(self, name: str) -> Backend | None:
        backend = self.registry.get(name)
        if backend is None:
            return None
        self.drainer.drain(backend, "removed")
        if not backend.healthy or self.idle(backend):
            await self.forget(backend)
        return backend

    async def forget(self, backend: Backend) -> None:
        """A removed backend leaves: its registry entry and its channel."""
        if self.registry.get(backend.name) is not backend:
            return
        self.registry.remove(backend.name)
        await self.channels.stop(backend.name)
        pins = len(await self.store.pins_of(backend.name))
        log.info("backend_removed", backend=backend.name, pins=pins)
