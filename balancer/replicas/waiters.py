"""Who hears that a slot was given back: the replicas with jobs waiting
for room, not every replica.

A replica whose late binder has jobs waiting enters itself in
`<prefix>slots:waiters` (name -> when that entry expires) before it asks
for a slot, and stays there while jobs wait, renewed with its lease every
second; at a beat that finds nothing waiting it leaves. Each replica
listens on a channel of its own, `<prefix>slots:freed:<name>`. The script
that gives a slot back drops the expired entries and publishes the backend's
name to each waiter left, in the same step: every replica that could use
the slot is told (they take it in the tenants' turn, as before), and a
replica with nothing waiting is not woken for nothing. A dead replica stops
renewing and drops out one lease later; a notice to it reaches nobody and
strands nothing, since every other waiter is told as well.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.replicas.listen import Message, text_of

WAITERS = "slots:waiters"  # after the store's prefix
CHANNEL = "slots:freed:"  # after the store's prefix; then the replica's name

# KEYS: the backend's slots, the waiters; ARGV: the prompt_id whose slot
# frees, now, the channels' prefix, the backend. Returns the waiters told.
FREE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local waiters = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, name in ipairs(waiters) do
  redis.call('PUBLISH', ARGV[3] .. name, ARGV[4])
end
return #waiters
"""


class Waiters:
    def __init__(self, redis: Redis, name: str, lease: float, clock: Clock, prefix: str) -> None:
        self.name = name
        self.key = prefix + WAITERS
        self.channels = prefix + CHANNEL
        self.channel = self.channels + name  # this replica's
        self.lease = lease
        self.clock = clock
        self.redis = redis
        self._free: Callable[..., Awaitable[int]] = redis.register_script(FREE)
        self.entered = False  # in the waiters' set, as far as this replica knows
        self._wants = False  # jobs waited at the end of the last binding pass
        self.heard: Counter[str] = Counter()  # backend -> notices heard

    async def want(self, waiting: bool) -> bool:
        """The binder's pass begins (`waiting`: jobs wait): enter the set
        first if it must, so a slot freed after its next refusal is heard.
        True when it entered now (notices sent before were not heard)."""
        self._wants = waiting
        if not waiting or self.entered:
            return False
        try:
            await self.redis.zadd(self.key, {self.name: self.clock() + self.lease})
        except RedisError:
            return False  # not entered: no refusal is believed without asking
        self.entered = True
        return True

    def renew(self, pipe: Any) -> bool:
        """At each beat, in its pipeline: the entry pushed one lease ahead
        while jobs wait, else removed. False: it left (nothing waits)."""
        if not self.entered:
            return True
        if self._wants:
            pipe.zadd(self.key, {self.name: self.clock() + self.lease})
            return True
        pipe.zrem(self.key, self.name)
        self.entered = False
        return False

    async def free(self, slots_key: str, prompt_id: str, backend: str) -> int:
        """Remove the slot and tell every waiter, in one step. Raises RedisError."""
        args = [prompt_id, self.clock(), self.channels, backend]
        return int(await self._free(keys=[slots_key, self.key], args=args))

    def backend_of(self, message: Message) -> str:
        backend = text_of(message["data"])
        self.heard[backend] += 1
        return backend
