"""The end of a drain: once a draining backend is empty, `POST /free` once if
it asks for it (`free_on_drain`), and a removed backend leaves the pool.

Empty is judged on the newest reading, an HTTP probe or a `status` push
(`balancer.backends.drain.is_idle`): the push that says its queue is empty
after its last job ended ends the drain then, not at the next probe (a
draining backend with its channel up is probed every `channel_interval`);
a stale reading, or none, never does. A backend is looked at after each of
its probes, and from one task (`run`) after each of its pushes, each change
of its drain and each end of a job there (`DrainWatch`).
"""

from __future__ import annotations

from collections.abc import Callable

from balancer.backends.drain import Drainer, DrainWatch
from balancer.backends.registry import Registry
from balancer.backends.state import Backend, LoadSnapshot
from balancer.jobs.events import LEFT_BACKEND, JobEvent
from balancer.ops.membership import Membership
from balancer.store.guard import guarded


class DrainEnds:
    def __init__(
        self,
        registry: Registry,
        drainer: Drainer,
        members: Membership,
        watch: DrainWatch,
        idle: Callable[[Backend], bool],
    ) -> None:
        self.registry = registry
        self.drainer = drainer
        self.members = members
        self.watch = watch
        self.idle = idle  # `drain.Idleness`
        # Its removal reads the store: while the store cannot answer, that
        # look is skipped and the next reading looks again.
        self._look = guarded("drain_end", self.check)

    async def on_probe(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        """Prober listener (after `Drainer.on_probe` settled the VRAM reason)."""
        await self.check(backend)

    async def job_event(self, event: JobEvent) -> None:
        """A job that left a backend: the last one may have emptied it."""
        if event.phase in LEFT_BACKEND:
            for name in (event.backend, event.taken_from):
                backend = self.registry.get(name) if name is not None else None
                if backend is not None:
                    self.watch.note(backend)

    async def run(self) -> None:
        """Look at each backend noted, until cancelled."""
        while True:
            for backend in await self.watch.take():
                await self._look(backend)

    async def check(self, backend: Backend) -> None:
        """End its drain if it is draining, still in the pool, and empty."""
        if self.registry.get(backend.name) is not backend or not backend.draining:
            return
        if not self.idle(backend):
            return
        if self.drainer.wants_free(backend):
            await self.drainer.free(backend)
        if "removed" in backend.drain_reasons:
            await self.members.forget(backend)
