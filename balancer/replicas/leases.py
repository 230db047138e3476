"""Leases: each replica writes when it last renewed into one Redis hash;
a replica that has not renewed for its lease is gone.

One hash (`<prefix>replicas`, replica name -> JSON) holds every replica, so
every replica reads the same list. A replica renews every second, deletes
its entry on a clean exit, and leaves it behind when killed: the entry of a
lapsed lease stays until another replica adopts its jobs, which deletes it
(adoption.py). A renewal only applies while the entry is still this
process's own (`incarnation`): a replica that stalled past its lease and
finds its entry gone knows it lost its jobs.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.logs import get_logger
from balancer.replicas.identity import Replica

log = get_logger("balancer.replicas")

KEY = "replicas"  # after the store's prefix
RENEW_EVERY = 1.0  # seconds

# KEYS[1] the hash; ARGV: name, incarnation, new entry. 1: renewed; 0: the
# entry is gone (adopted) or another process's (lost), nothing written.
RENEW = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local ok, entry = pcall(cjson.decode, raw)
if not ok or type(entry) ~= 'table' or entry['incarnation'] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


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
    def __init__(self, redis: Redis, me: Replica, lease: float, clock: Clock, prefix: str) -> None:
        self.redis = redis
        self.key = prefix + KEY
        self.me = me
        self.lease = lease
        self.clock = clock
        self.incarnation = ""
        self.renewed_at: float | None = None  # of the last write that applied
        self._renew: Callable[..., Awaitable[int]] = redis.register_script(RENEW)

    def _entry(self, now: float) -> str:
        entry = {"address": self.me.address, "renewed_at": now, "lease": self.lease}
        return json.dumps({**entry, "incarnation": self.incarnation})

    async def join(self) -> None:
        """Write a new entry for this replica (a start, or after it lost its
        lease), whatever was there. Raises RedisError."""
        self.incarnation = secrets.token_hex(8)
        now = self.clock()
        await self.redis.hset(self.key, self.me.name, self._entry(now))
        self.renewed_at = now

    async def renew(self) -> bool:
        """Write this replica's entry with the time now; False (nothing
        written) when it is no longer this process's: another replica took
        its jobs, the lease is lost. Raises RedisError."""
        now = self.clock()
        held = bool(
            await self._renew(
                keys=[self.key], args=[self.me.name, self.incarnation, self._entry(now)]
            )
        )
        self.renewed_at = now if held else None
        return held

    def holds(self) -> bool:
        """Whether, as far as this replica knows, no other one may have
        taken its jobs yet: its last renewal is younger than its lease."""
        return self.renewed_at is not None and self.clock() - self.renewed_at <= self.lease

    async def release(self) -> None:
        """A clean exit: the entry goes, nothing is left to adopt."""
        try:
            await self.redis.hdel(self.key, self.me.name)
        except RedisError as exc:
            log.warning("lease_release_failed", replica=self.me.name, error=str(exc))

    async def members(self) -> list[Member]:
        """Every replica with an entry (alive or lapsed), by name. Raises
        RedisError: an unreadable list is never an empty one."""
        raw = await self.redis.hgetall(self.key)
        found = (_member(_text(k), _text(v)) for k, v in raw.items())
        return sorted((m for m in found if m is not None), key=lambda m: m.name)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
