"""Leases: each replica writes when it last renewed into one Redis hash;
a replica that has not renewed for its lease is gone.

One hash (`balancer:replicas`, replica name -> JSON) holds every replica, so
every replica reads the same list. A replica renews every second, deletes
its entry on a clean exit, and leaves it behind when killed: the entry of a
lapsed lease stays until another replica has adopted its jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.logs import get_logger
from balancer.replicas.identity import Replica

log = get_logger("balancer.replicas")

KEY = "balancer:replicas"
RENEW_EVERY = 1.0  # seconds


@dataclass(frozen=True)
class Member:
    """One replica as its last renewal wrote it."""

    name: str
    address: str
    renewed_at: float  # wall-clock seconds, by the replica's clock
    lease: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.renewed_at)

    def alive(self, now: float) -> bool:
        return self.age(now) <= self.lease


def _member(name: str, raw: str) -> Member | None:
    try:
        data = json.loads(raw)
        return Member(name, str(data["address"]), float(data["renewed_at"]), float(data["lease"]))
    except (ValueError, KeyError, TypeError):
        log.warning("replica_entry_unreadable", replica=name)
        return None


class Leases:
    def __init__(self, redis: Redis, me: Replica, lease: float, clock: Clock) -> None:
        self.redis = redis
        self.me = me
        self.lease = lease
        self.clock = clock

    async def renew(self) -> None:
        """Write this replica's entry with the time now. Raises RedisError."""
        entry = {"address": self.me.address, "renewed_at": self.clock(), "lease": self.lease}
        await self.redis.hset(KEY, self.me.name, json.dumps(entry))

    async def release(self) -> None:
        """A clean exit: the entry goes, nothing is left to adopt."""
        try:
            await self.redis.hdel(KEY, self.me.name)
        except RedisError as exc:
            log.warning("lease_release_failed", replica=self.me.name, error=str(exc))

    async def members(self) -> list[Member]:
        """Every replica with an entry (alive or lapsed), by name. Raises
        RedisError: an unreadable list is never an empty one."""
        raw = await self.redis.hgetall(KEY)
        found = (_member(_text(k), _text(v)) for k, v in raw.items())
        return sorted((m for m in found if m is not None), key=lambda m: m.name)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
