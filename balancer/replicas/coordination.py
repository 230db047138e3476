"""What one replica shares with the others through Redis, built once in the
composition root when the balancer runs as one of several replicas."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.config.model import Settings
from balancer.replicas.buckets import RedisBuckets
from balancer.replicas.bus import EventBus
from balancer.replicas.changes import BackendChanges
from balancer.replicas.identity import Replica, identify
from balancer.replicas.leases import RENEW_EVERY, Leases
from balancer.replicas.outage import Outage, Sleep, repeat
from balancer.replicas.slots import Slots
from balancer.tasks import stop


@dataclass(frozen=True)
class Replicas:
    me: Replica
    leases: Leases
    changes: BackendChanges
    slots: Slots
    bus: EventBus
    rates: RedisBuckets  # the API keys' rate limits, pool-wide

    async def others_alive(self) -> bool:
        """Whether another replica holds a lease now. Raises RedisError."""
        now = self.leases.clock()
        members = await self.leases.members()
        return any(m.alive(now) for m in members if m.name != self.me.name)

    async def heartbeat(self) -> None:
        """Every second: this replica's lease, then the slots it holds."""
        await self.leases.renew()
        await self.slots.renew()

    async def keep(self, sleep: Sleep = asyncio.sleep) -> None:
        """Beat every second until cancelled; Redis away, it beats again
        (the lease and the slots lapse only if Redis stays away)."""
        outage = Outage("heartbeat", replica=self.me.name)
        await repeat(self.heartbeat, lambda: RENEW_EVERY, outage, sleep)

    async def status(self) -> dict[str, Any]:
        """`/balancer/status`'s replica fields: every replica with a lease,
        by name (the same list from each), and which one answered. Redis
        unreachable: the list is null and the error says why (an unread list
        is not an empty pool)."""
        now = self.leases.clock()
        try:
            members = await self.leases.members()
        except RedisError as exc:
            return {"replica": self.me.name, "replicas": None, "replicas_error": str(exc)}
        rows = [
            {
                "name": m.name,
                "address": m.address,
                "lease_age_s": round(m.age(now), 3),
                "alive": m.alive(now),
            }
            for m in members
        ]
        return {"replica": self.me.name, "replicas": rows}


def alone(me: Replica) -> dict[str, Any]:
    """The replica fields of a balancer that runs on its own."""
    row = {"name": me.name, "address": me.address, "lease_age_s": None, "alive": True}
    return {"replica": me.name, "replicas": [row]}


def replicas_of(settings: Settings, redis: Redis | None, wall: Clock) -> Replicas | None:
    """What this balancer shares through `redis`; None when it runs alone."""
    if redis is None:
        return None
    me = identify(settings.replicas, settings.listen)
    lease = settings.replicas.lease
    leases = Leases(redis, me, lease, wall)
    slots = Slots(redis, lease, wall)
    store = settings.store
    rates = RedisBuckets(redis, store.prefix, wall, store.timeout)
    return Replicas(me, leases, BackendChanges(redis), slots, EventBus(redis, me.name), rates)


async def join(stack: contextlib.AsyncExitStack, replicas: Replicas) -> None:
    """Take a lease before serving (Redis unreachable: the start fails),
    keep it while running, give it back on a clean exit."""
    await replicas.leases.renew()
    stack.push_async_callback(replicas.leases.release)
    stack.push_async_callback(stop, asyncio.create_task(replicas.keep()))
