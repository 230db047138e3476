"""Room on each backend, shared between replicas: a prompt is sent only
with a slot taken in Redis, so two replicas never fill the same slot.

A backend has `capacity` slots (the one it runs plus
`routing.max_pending_per_backend`). Its reservations are one sorted set,
`<prefix>slots:<backend>`: prompt_id -> when the reservation expires. One Lua
script drops the expired ones and takes a slot only while fewer than
`capacity` are held, so the check and the take are one step. The replica
that took a slot renews it every second (with its lease) and gives it back
when the job ends there, is taken back or was never accepted; a replica that
dies stops renewing, and its slots expire one lease later.

A slot given back is offered, in the same step as its removal, to one
replica with jobs waiting for room, the waiters in turn (waiters.py),
which wakes its late binder: a replica whose jobs wait for room learns at
once that another replica's job left a backend, as one balancer learns of
its own jobs' ends, instead of at its next probe or `status` push (which
may come before the slot is free, and then not again for a while). An
offer the binding pass after it did not use is handed on (`passed`). A
replica with nothing waiting is not told.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.jobs.events import JobEvent
from balancer.jobs.fair import TurnCheck
from balancer.logs import get_logger
from balancer.replicas.listen import Message, listen
from balancer.replicas.outage import Outage, Sleep
from balancer.replicas.waiters import Offer, Waiters
from balancer.tasks import stop

log = get_logger("balancer.replicas")

PREFIX = "slots:"  # after the store's prefix
# A backend found full is asked again at once when a slot there is given
# back (its notice), and after this many seconds without one (a dead
# replica's slots expire with no notice; a notice lost while Redis was away).
RECHECK = 1.0
# Redis drops a backend's set this long (ms) after its last write: nobody
# renews it any more (every replica stopped).
FORGET_MS = 60_000

# With a second key (the tenants' turn, replicas/turn.py): taken only while
# the turn is still ARGV[6] (else -1: it moved), and moved to ARGV[7] with it.
TAKE = """
local turn = KEYS[2]
if turn and (redis.call('GET', turn) or '') ~= ARGV[6] then
  return -1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local mine = redis.call('ZSCORE', KEYS[1], ARGV[4])
if mine or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  if turn and ARGV[7] == '' then
    redis.call('DEL', turn)
  elseif turn then
    redis.call('SET', turn, ARGV[7])
  end
  return 1
end
return 0
"""

# Phases after which a job holds no slot on the backend it was sent to.
GIVES_BACK = frozenset({"completed", "failed", "interrupted", "cancelled", "retried", "rejected"})


class Slots:
    def __init__(self, redis: Redis, lease: float, clock: Clock, prefix: str, name: str) -> None:
        self.redis = redis
        self.prefix = prefix + PREFIX
        self.lease = lease
        self.clock = clock
        self.held: dict[str, str] = {}  # prompt_id -> backend, this replica's
        self._take: Callable[..., Awaitable[int]] = redis.register_script(TAKE)
        self.outage = Outage("slot_take")
        self.waiters = Waiters(redis, name, lease, clock, prefix)
        self._freed = redis.pubsub()
        # While freed slots are heard (subscribed, `watch_freed` runs, and
        # among the waiters): backends found full -> until when that is
        # believed without asking Redis again; the notices each has had
        # (`waiters.heard`: one read before the refusal it answers must not
        # leave the backend marked full).
        self._watching = False
        self._full_until: dict[str, float] = {}
        # Offers heard and neither used nor handed on yet (backend -> the
        # newest), and those the binding pass under way looks at.
        self._offers: dict[str, Offer] = {}
        self._looked_at: dict[str, Offer] = {}
        self._handing: set[asyncio.Task[None]] = set()  # offers on their way on
        self._capacity = 1  # slots per backend, as the binder last took them

    async def take(
        self, backend: str, prompt_id: str, capacity: int, turn: TurnCheck | None = None
    ) -> bool | Literal["again"]:
        """A slot on `backend` for `prompt_id` (again: renewed); False when
        every slot is held, or Redis is unreachable (no room known is no
        room). `turn`: taken only while the tenants' turn is still as read
        ("again" when it moved), and moved in the same step."""
        self._capacity = capacity
        before = self.held.get(prompt_id)
        if before is not None and before != backend:
            await self.give_back(prompt_id)
        now, notices = self.clock(), self.waiters.heard[backend]
        heard = self._watching and self.waiters.entered  # a slot freed from now on
        if before != backend and now < self._full_until.get(backend, now):
            return False  # full, and no slot freed there since
        keys, args = [self.prefix + backend], [now, now + self.lease, capacity, prompt_id]
        if turn is not None:
            keys.append(turn[0])
        args += [FORGET_MS, *(turn[1:] if turn is not None else ())]
        try:
            taken = await self._take(keys=keys, args=args)
        except RedisError as exc:
            self.outage.failed(exc)
            return False
        self.outage.ok()
        if taken != -1:  # the slot offered went, to this replica or to another
            self._offers.pop(backend, None)
            self._looked_at.pop(backend, None)
        if taken == 1:
            self.held[prompt_id] = backend
        elif taken == 0 and heard and self.waiters.heard[backend] == notices:
            self._full_until[backend] = now + RECHECK
        return "again" if taken == -1 else taken == 1

    def known_full(self) -> frozenset[str]:
        """Backends found full, with no slot freed there since (for up to
        RECHECK): a take there is refused without asking Redis."""
        now = self.clock()
        return frozenset(name for name, until in self._full_until.items() if now < until)

    async def give_back(self, prompt_id: str, backend: str | None = None) -> None:
        """Free its slot; Redis away, it expires one lease later. `backend`:
        where the job was, to free the slot another replica took for it
        (a job cancelled through this one)."""
        backend = self.held.pop(prompt_id, None) or backend
        if backend is None:
            return
        try:
            await self.waiters.free(self.prefix + backend, prompt_id, backend)
        except RedisError as exc:
            log.warning("slot_give_back_failed", backend=backend, error=str(exc))

    async def wants_room(self, waiting: bool) -> None:
        """A binding pass begins, with jobs `waiting` or not: while they
        wait, this replica is offered slots freed (waiters.py)."""
        self._looked_at = dict(self._offers)
        if await self.waiters.want(waiting):
            self._full_until.clear()  # refusals from before: nobody said when they ended

    async def passed(self, capacity: int) -> None:
        """A binding pass ended: the offers it looked at and did not use (no
        job of this replica's took them) go to the next waiter, while the
        slot is still free; one heard since waits for the next pass."""
        unused, self._looked_at = self._looked_at, {}
        for backend, offer in unused.items():
            if self._offers.get(backend) is not offer:
                continue  # a newer one came meanwhile: the next pass looks at it
            del self._offers[backend]
            if not offer.last():
                await self._hand_on(offer, capacity)

    async def _hand_on(self, offer: Offer, capacity: int | None = None) -> None:
        """`offer`, not used here, to the next waiter while the slot is free
        (`capacity`: the one the binder takes slots with, else the last)."""
        self._capacity = capacity or self._capacity
        try:
            await self.waiters.hand_on(self.prefix + offer.backend, offer, self._capacity)
        except RedisError as exc:
            log.warning("slot_offer_failed", backend=offer.backend, error=str(exc))

    async def watch_freed(self, wake: Callable[[], None], sleep: Sleep = asyncio.sleep) -> None:
        """Call `wake` whenever a slot is given back while this replica
        waits for room, until cancelled."""
        channel = self.waiters.channel
        try:
            heard = partial(self._heard, wake=wake)
            await listen(self._freed, lambda: [channel], heard, Outage("slot_freed"), sleep)
        finally:
            self._watching = False

    def _heard(self, message: Message, wake: Callable[[], None]) -> None:
        """An offer: for the next binding pass, which it wakes; or, when
        nothing waited as the last pass began (no pass is due for it: the
        binder wakes only to do something), on to the next waiter at once."""
        offer = self.waiters.offer_of(message)
        self._full_until.pop(offer.backend, None)
        if self.waiters.wants:
            self._offers[offer.backend] = offer
            wake()
        elif not offer.last():
            task = asyncio.get_running_loop().create_task(self._hand_on(offer))
            self._handing.add(task)
            task.add_done_callback(self._handing.discard)

    async def subscribe(self) -> None:
        """Hear freed slots from now on (while among the waiters). Raises RedisError."""
        await self._freed.subscribe(self.waiters.channel)
        self._watching = True  # notices wait in the subscription until read

    async def close(self) -> None:
        for task in list(self._handing):
            await stop(task)
        await self._freed.aclose()  # type: ignore[no-untyped-call]

    def forget(self) -> None:
        """Another replica holds these slots now (it adopted their jobs):
        stop renewing them, and never give them back from here."""
        self.held.clear()

    async def renew(self) -> None:
        """Push the expiry of every slot this replica holds one lease ahead
        (only those still held: one that expired stays free). Raises RedisError."""
        if not self.held and not self.waiters.entered:
            return
        expires = self.clock() + self.lease
        async with self.redis.pipeline(transaction=False) as pipe:
            if not self.waiters.renew(pipe):
                self._full_until.clear()  # no notice comes any more
            for prompt_id, backend in self.held.items():
                pipe.zadd(self.prefix + backend, {prompt_id: expires}, xx=True)
                pipe.pexpire(self.prefix + backend, FORGET_MS)
            await pipe.execute()

    async def holders(self, backend: str) -> list[str]:
        """The prompt_ids holding a slot on `backend` now."""
        raw = await self.redis.zrangebyscore(self.prefix + backend, f"({self.clock()}", "+inf")
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]

    async def job_event(self, event: JobEvent) -> None:
        if event.phase in GIVES_BACK:
            await self.give_back(event.prompt_id, event.backend)


async def watch_room(
    stack: contextlib.AsyncExitStack, slots: Slots, wake: Callable[[], None]
) -> None:
    """While the app runs, `wake` (the late binder) whenever a slot frees:
    subscribed before it serves (Redis unreachable: the start fails, as
    the lease does), so no slot given back after the start goes unheard."""
    await slots.subscribe()
    stack.push_async_callback(slots.close)
    stack.push_async_callback(stop, asyncio.create_task(slots.watch_freed(wake)))
