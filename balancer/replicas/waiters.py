"""Who hears that a slot was given back: one replica with jobs waiting
for room, offered it in turn, not every replica.

A replica whose late binder has jobs waiting enters itself in
`<prefix>slots:waiters` (name -> when that entry expires) before it asks
for a slot, and stays there while jobs wait, renewed with its lease every
second; at a beat that finds nothing waiting it leaves. Each replica
listens on a channel of its own, `<prefix>slots:freed:<name>`. The script
that gives a slot back drops the expired entries and, in the same step,
offers the backend to ONE waiter: the next after the one offered the last
slot (`<prefix>slots:offered`), in name order. So waiters take freed slots
in turn, and a freed slot wakes one replica, which takes it, instead of
every waiter racing for it (each loser paid a wake-up, the tenants' turn
read and a refused take). An offer the replica does not use in the binding
pass that follows (its jobs went elsewhere, cannot run there, or leave the
turn to another replica's), or that comes when nothing waited there as its
last pass began (no pass comes for it), is handed on to the next waiter,
if the slot is still free, until every waiter has had it once
(`hand_on`). A replica with nothing waiting is not told.

Offers only choose whom to wake: the slot is still taken only by the
script that checks the room (slots.py), so no offer can double-book one.
A dead replica stays a waiter until its entry expires (one lease): an
offer to it wakes nobody, and the slot is asked for again by the others
RECHECK seconds after their last refusal there, as when a notice is lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.replicas.listen import Message, text_of

WAITERS = "slots:waiters"  # after the store's prefix
CHANNEL = "slots:freed:"  # after the store's prefix; then the replica's name
OFFERED = "slots:offered"  # after the store's prefix: the waiter offered a slot last

# ARGV (both scripts): now, the channels' prefix, the backend; KEYS[2] the
# waiters. offer_next: the live waiters (the expired dropped first) are
# offered the backend, as offer `number` (from 0), by the first after
# `after` in name order (wrapping): "<backend> <number> <waiters>". Returns
# the name offered it, or false (no waiter, or every one has had it).
_OFFER = """
local function offer_next(after, number)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
  local waiters = redis.call('ZRANGE', KEYS[2], 0, -1)
  if number >= #waiters then return false end
  table.sort(waiters)
  local to = waiters[1]
  for _, name in ipairs(waiters) do
    if name > after then to = name break end
  end
  redis.call('PUBLISH', ARGV[2] .. to, ARGV[3] .. ' ' .. number .. ' ' .. #waiters)
  return to
end
"""

# KEYS: the backend's slots, the waiters, the waiter offered a slot last;
# ARGV[4] the prompt_id whose slot frees. Frees it and offers it to the
# waiter after the one offered the last slot.
FREE = (
    _OFFER
    + """
redis.call('ZREM', KEYS[1], ARGV[4])
local to = offer_next(redis.call('GET', KEYS[3]) or '', 0)
if to then redis.call('SET', KEYS[3], to) end
return to
"""
)

# KEYS: the backend's slots, the waiters; ARGV[4] the replica handing an
# offer on, ARGV[5] the offer's number + 1, ARGV[6] the backend's capacity.
# To the waiter after it, only while a slot there is still free.
HAND_ON = (
    _OFFER
    + """
if redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf') >= tonumber(ARGV[6]) then
  return false
end
return offer_next(ARGV[4], tonumber(ARGV[5]))
"""
)


@dataclass(frozen=True)
class Offer:
    """A freed slot on `backend` offered to this replica: the `number`-th
    waiter offered it (from 0), of `waiters` then."""

    backend: str
    number: int = 0
    waiters: int = 1

    def last(self) -> bool:
        """Every waiter has had it: not handed on again."""
        return self.number + 1 >= self.waiters


def offer_of(message: Message) -> Offer:
    backend, *rest = text_of(message["data"]).split(" ")
    try:
        number, waiters = (int(r) for r in rest)
    except ValueError:
        return Offer(backend)
    return Offer(backend, number, waiters)


class Waiters:
    def __init__(self, redis: Redis, name: str, lease: float, clock: Clock, prefix: str) -> None:
        self.name = name
        self.key, self.offered = prefix + WAITERS, prefix + OFFERED
        self.channels = prefix + CHANNEL
        self.channel = self.channels + name  # this replica's
        self.lease = lease
        self.clock = clock
        self.redis = redis
        self._free: Callable[..., Awaitable[Any]] = redis.register_script(FREE)
        self._hand_on: Callable[..., Awaitable[Any]] = redis.register_script(HAND_ON)
        self.entered = False  # in the waiters' set, as far as this replica knows
        self.wants = False  # jobs waited as the last binding pass began
        self.heard: Counter[str] = Counter()  # backend -> notices heard

    async def want(self, waiting: bool) -> bool:
        """The binder's pass begins (`waiting`: jobs wait): enter the set
        first if it must, so a slot freed after its next refusal is heard.
        True when it entered now (notices sent before were not heard)."""
        self.wants = waiting
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
        if self.wants:
            pipe.zadd(self.key, {self.name: self.clock() + self.lease})
            return True
        pipe.zrem(self.key, self.name)
        self.entered = False
        return False

    async def free(self, slots_key: str, prompt_id: str, backend: str) -> str | None:
        """Remove the slot and offer it to the next waiter, in one step; the
        waiter offered it (None: nobody waits). Raises RedisError."""
        keys = [slots_key, self.key, self.offered]
        args = [self.clock(), self.channels, backend, prompt_id]
        told = await self._free(keys=keys, args=args)
        return None if told is None else text_of(told)

    async def hand_on(self, slots_key: str, offer: Offer, capacity: int) -> str | None:
        """An offer this replica did not use, to the next waiter while the
        slot is still free; the waiter offered it (None: nobody). Raises RedisError."""
        args = [self.clock(), self.channels, offer.backend, self.name, offer.number + 1, capacity]
        told = await self._hand_on(keys=[slots_key, self.key], args=args)
        return None if told is None else text_of(told)

    def offer_of(self, message: Message) -> Offer:
        offer = offer_of(message)
        self.heard[offer.backend] += 1
        return offer
