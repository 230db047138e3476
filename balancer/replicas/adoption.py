"""Adoption: the jobs of a replica that died are followed by another one
within a lease.

Every second a replica renews its lease, then the slots it holds. When its
renewal finds the lease gone (it stalled past it, and another replica took
its jobs), it stops following every job, joins again and takes back only
what nobody took. When a lease lapsed, or a replica left, it adopts: the
jobs it takes (owners.py, one atomic step, so each job goes to one replica)
are resumed as after a restart (waiting ones wait here, one caught
mid-dispatch is followed on its backend) and followed: the next probe of
their backend reconciles them, under the usual rules (a job gone from a
backend that answers ends from its history, or runs again if the backend
lost it; an unresponsive backend keeps its jobs for the failover grace).
Their events reach their clients wherever they are connected (bus.py); those
their backends send from then on come to this replica, which takes over the
dead replica's channel ids (takeover.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from balancer.jobs.follow import Follower
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.routing import Routing
from balancer.logs import get_logger
from balancer.replicas.coordination import Replicas
from balancer.replicas.leases import RENEW_EVERY, Leases
from balancer.replicas.outage import Outage, Sleep, repeat
from balancer.replicas.owners import Owners, Taken
from balancer.replicas.takeover import TakenChannels
from balancer.store import StoredJob, StoreUnavailable

log = get_logger("balancer.replicas")

P = ParamSpec("P")


class Adoption:
    def __init__(
        self,
        replicas: Replicas,
        owners: Owners,
        jobs: Jobs,
        follower: Follower,
        routing: Routing,
        wake: Callable[[], None],
        taken: TakenChannels,
    ) -> None:
        self.replicas = replicas
        self.owners = owners
        self.jobs = jobs
        self.follower = follower
        self.routing = routing
        self.wake = wake  # the late binder: adopted jobs may be waiting
        self.taken = taken  # the dead replicas' channels, for the jobs adopted
        self._seen: frozenset[str] = frozenset()  # replicas with a lease at the last beat
        # Taken in Redis, not yet resumed here (the store was away): retried.
        self._unresumed: list[Taken] = []

    async def start(self) -> int:
        """At start: take the jobs of replicas that are gone, those recorded
        under this name (a former process), and any stored without an owner.
        Raises RedisError or StoreUnavailable (the start fails)."""
        unfinished = [job.prompt_id for job in await self.jobs.store.unfinished_jobs()]
        return await self._adopt(await self.owners.adopt(True, unfinished))

    async def beat(self) -> None:
        """Renew the lease (or notice it was lost), the slots, and adopt the
        jobs of replicas gone since the last beat. Raises RedisError."""
        if not await self.replicas.leases.renew():
            await self._lost()
        await self._free_ended()
        await self.replicas.slots.renew()
        leases = self.replicas.leases
        members = await leases.members()
        now = leases.clock()
        names = frozenset(m.name for m in members)
        lapsed = any(not m.alive(now) for m in members)
        left = bool(self._seen - names)
        self._seen = names
        taken = await self.owners.adopt(False) if lapsed or left else []
        await self._retried(taken)

    async def _free_ended(self) -> None:
        """Give back the slots of jobs that ended on another replica (one
        that stalled, then relayed their end from its channel before it
        knew): their end event was not emitted here. The store away: at a
        later beat."""
        slots = self.replicas.slots
        try:
            for prompt_id in list(slots.held):
                job = await self.jobs.store.get_job(prompt_id)
                if job is None or job.finished:
                    await slots.give_back(prompt_id)
        except StoreUnavailable as exc:
            log.warning("slot_check_deferred", error=str(exc))

    async def _retried(self, taken: list[Taken]) -> None:
        """Resume what was taken now and what could not be resumed before;
        the store away, all of it at the next beat."""
        self._unresumed += taken
        if not self._unresumed:
            return
        try:
            await self._adopt(self._unresumed)
        except StoreUnavailable as exc:
            log.warning("adoption_deferred", jobs=len(self._unresumed), error=str(exc))
            return
        self._unresumed = []

    async def _lost(self) -> None:
        """Another replica took this one's jobs while it stalled: follow
        none of them, join again, and take back those nobody took."""
        log.warning("lease_lost", replica=self.replicas.me.name)
        self.follower.forget_all()
        self.jobs.forget()
        self.replicas.slots.forget()
        self._unresumed = []
        await self.taken.lost()
        await self.replicas.leases.join()
        await self._retried(await self.owners.adopt(True))

    async def _adopt(self, taken: list[Taken]) -> int:
        """Resume and follow the jobs taken; those already ended need nobody."""
        if not taken:
            return 0
        found = [(t, await self.jobs.store.get_job(t.prompt_id)) for t in taken]
        jobs = [job for _, job in found if job is not None and not job.finished]
        for t, job in found:
            if job is None or job.finished:
                await self.owners.release(t.prompt_id)
        await self.jobs.resume(jobs)
        self.follower.adopt(jobs)
        self.taken.adopt(jobs)
        await self._keep_slots(jobs)
        formers = sorted({t.former for t in taken if t.former})
        log.info("jobs_adopted", replica=self.replicas.me.name, jobs=len(jobs), formers=formers)
        self.wake()
        return len(jobs)

    async def _keep_slots(self, jobs: list[StoredJob]) -> None:
        """The room adopted jobs hold on their backends stays theirs."""
        capacity = self.routing.slots
        if capacity is None:
            return
        for job in jobs:
            fresh = await self.jobs.store.get_job(job.prompt_id)
            if fresh is not None and fresh.backend is not None and not fresh.finished:
                await self.replicas.slots.take(fresh.backend, fresh.prompt_id, capacity)

    async def keep(self, sleep: Sleep = asyncio.sleep) -> None:
        """Beat every second until cancelled; Redis away, it beats again
        (the lease and the slots lapse only if Redis stays away)."""
        outage = Outage("heartbeat", replica=self.replicas.me.name)
        await repeat(self.beat, lambda: RENEW_EVERY, outage, sleep)


def while_held(leases: Leases, call: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
    """`call`, skipped while this replica's lease may have lapsed (it stalled
    and has not renewed since): another replica may follow its jobs now."""

    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        if leases.holds():
            await call(*args, **kwargs)

    return run
