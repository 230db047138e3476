"""Failover: the jobs of a backend that is gone are dispatched again.

Dead is not unresponsive. A backend that refuses or resets connections is
dead: its unfinished jobs go back to the balancer queue at once (and one that
comes back without a job loses that job, see ends.py). A backend that only
times out may be busy (a large checkpoint loading stalls ComfyUI for seconds):
its jobs stay with it for `routing.failover_grace`, counted from its last
sign of life (a probe answer, a channel event), and follow it if it comes
back in time. Only after the grace
are they sent elsewhere; if the first run then finishes anyway, its result
stands and the second run is counted as a duplicate (see lifecycle.py).
A job whose end was told (`told_at`) ran to its end and never runs again, so
nothing is gained by moving it: past the grace it stays with its backend and
is read when that backend answers again; only a dead backend (or one back
without its entry, see ends.py) loses its outputs.
"""

from __future__ import annotations

from collections.abc import Callable

from balancer.backends.state import Backend, Clock, LoadSnapshot
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.routing import Routing
from balancer.logs import get_logger

log = get_logger("balancer.jobs")


class Failover:
    def __init__(
        self, jobs: Jobs, routing: Routing, clock: Clock, follows: Callable[[str], bool]
    ) -> None:
        self.jobs = jobs
        self.routing = routing
        self.clock = clock
        # Among replicas, each fails over only the jobs it follows: another
        # replica's job, already sent elsewhere by it, must not move again.
        self.follows = follows
        self._silent_since: dict[str, float] = {}

    async def probe_failed(self, backend: Backend, dead: bool) -> None:
        """Each failed probe that counted (see the prober). A dead backend
        loses its jobs once it is down; an unresponsive one once it has not
        answered for the grace, down or not (the prober never takes the last
        healthy backend out for timeouts alone)."""
        first = self._silent_since.setdefault(backend.name, self.clock())
        since = backend.alive_at if backend.alive_at is not None else first  # its last sign of life
        if dead and not backend.healthy:
            await self.lose_all(backend.name, f"backend {backend.name} lost")
        elif self.clock() - since >= self.routing.settings.failover_grace:
            reason = f"backend {backend.name} unresponsive past the grace"
            await self.lose_all(backend.name, reason, keep_told=True)

    async def probe_succeeded(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        self._silent_since.pop(backend.name, None)

    async def lose_all(self, backend: str, reason: str, keep_told: bool = False) -> None:
        """`keep_told`: a job whose end was told stays (its backend is only
        unresponsive: its outputs are there, to be read when it answers)."""
        attempts = self.routing.settings.max_attempts
        for job in await self.jobs.store.jobs_on(backend):
            if keep_told and job.told_at is not None:
                continue
            if job.state in ("queued", "running") and self.follows(job.prompt_id):
                await self.jobs.lost(job.prompt_id, reason, attempts)
