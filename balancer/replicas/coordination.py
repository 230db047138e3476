"""What one replica shares with the others through Redis, built once in the
composition root when the balancer runs as one of several replicas."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.config.settings import Settings
from balancer.files.redis_uploads import RedisUploads
from balancer.files.uploads import uploads_dir
from balancer.replicas.buckets import RedisBuckets
from balancer.replicas.bus import EventBus
from balancer.replicas.changes import BackendChanges
from balancer.replicas.identity import Replica, identify
from balancer.replicas.leases import Leases
from balancer.replicas.nodes import SharedNodes
from balancer.replicas.owners import Owners
from balancer.replicas.slots import Slots
from balancer.replicas.turn import SharedTurn
from balancer.userdata.redis_store import RedisUserData


@dataclass(frozen=True)
class Replicas:
    me: Replica
    leases: Leases
    changes: BackendChanges
    slots: Slots
    bus: EventBus
    rates: RedisBuckets  # the API keys' rate limits, pool-wide
    owners: Owners
    uploads: RedisUploads  # the upload index and blobs, pool-wide
    user_data: RedisUserData  # every user's settings and files, pool-wide
    turn: SharedTurn  # the API keys' turn in the balancer queue
    nodes: SharedNodes  # the node each running job is on

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
    store = settings.store
    prefix = store.prefix  # every key and channel, as the store's own keys
    leases = Leases(redis, me, lease, wall, prefix)
    slots = Slots(redis, lease, wall, prefix, me.name)
    changes = BackendChanges(redis, prefix)
    rates = RedisBuckets(redis, prefix, wall, store.timeout)
    bus = EventBus(redis, me.name, prefix)
    owners = Owners(redis, me.name, wall, prefix)
    local = uploads_dir(settings)  # this replica's spool and copies of blobs
    uploads = RedisUploads(redis, prefix, local, settings.uploads, store.timeout, wall)
    user_data = RedisUserData(redis, prefix, store.timeout, wall)
    turn = SharedTurn(redis, prefix, wall)
    nodes = SharedNodes(redis, bus, prefix)
    return Replicas(me, leases, changes, slots, bus, rates, owners, uploads, user_data, turn, nodes)


async def join(stack: contextlib.AsyncExitStack, replicas: Replicas) -> None:
    """Take a lease before serving (Redis unreachable: the start fails), and
    give it back on a clean exit (the jobs it still follows are adopted at
    the others' next beat)."""
    await replicas.leases.join()
    stack.push_async_callback(replicas.leases.release)
