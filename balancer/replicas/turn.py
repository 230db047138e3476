"""The API keys' turn in the balancer queue, pool-wide, so several replicas
take their waiting jobs in one rotation, as one balancer takes its own
(balancer/jobs/fair.py). Two things in Redis:

- `<prefix>turn`, the tenant served last (JSON; absent before anyone was),
  written only here, by one compare-and-set script;
- `<prefix>waiting`, tenant -> its jobs in `waiting` across the pool, kept
  by the store's own scripts in the same step as each transition
  (balancer/store/redis_scripts.py).

A replica reads both before choosing among its waiting jobs, and starts
its rotation after the tenant served last. Binding the head of its
rotation moves the turn to that job's tenant, only from the tenant it read:
of two replicas that read the same turn, the second is refused and chooses
again, so two never serve one turn. When the tenant next in turn has jobs
waiting only on another replica, this one leaves the turn to it (that
replica binds it) for up to DEFER seconds: that replica may be unable to
place the job, or dead until its jobs are adopted. A job not sent after all
(another replica held the backend's slot, or moved the job) gives the turn
back, unless it moved on meanwhile. Redis away: this replica's own turn
(no slot is taken then anyway).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.jobs.fair import FairQueue, Move, Served, Taken, Tenant, TurnCheck, rotation
from balancer.replicas.outage import Outage
from balancer.store import StoredJob

KEY = "turn"  # after the store's prefix
WAITING = "waiting"  # the store's count of waiting jobs per tenant
DEFER = 2.0  # seconds a replica leaves the turn to a tenant waiting elsewhere

MOVE = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""


def encode(served: Served) -> str:
    return "" if served is None else json.dumps(served[0])


def tenant_of(raw: bytes | str) -> Tenant:
    tenant = json.loads(raw)
    return tenant if isinstance(tenant, str) else None


class SharedTurn:
    def __init__(self, redis: Redis, prefix: str, clock: Clock) -> None:
        self.redis = redis
        self.key, self.waiting = prefix + KEY, prefix + WAITING
        self.clock = clock
        self._move: Callable[..., Awaitable[int]] = redis.register_script(MOVE)
        self.outage = Outage("tenant_turn")
        self._pool: set[Tenant] = set()  # tenants with jobs waiting, as last read
        self._deferred: tuple[Served, Tenant, float] | None = None  # to whom, since when

    async def read(self) -> tuple[Served, set[Tenant]]:
        """The tenant served last and the tenants waiting, pool-wide. Raises RedisError."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self.key)
            pipe.hkeys(self.waiting)
            raw, tenants = await pipe.execute()
        served = None if raw is None else (tenant_of(raw),)
        return served, {tenant_of(t) for t in tenants}

    async def move(self, since: Served, to: Served) -> bool:
        """The turn to `to`, only if it is still `since`. Raises RedisError."""
        return bool(await self._move(keys=[self.key], args=[encode(since), encode(to)]))

    async def follow(self, queue: FairQueue) -> None:
        try:
            served, self._pool = await self.read()
        except RedisError as exc:
            self.outage.failed(exc)
            self._pool = set()  # unknown: this replica's own turn
        else:
            self.outage.ok()
            queue.follow(served)

    def take(self, queue: FairQueue, job: StoredJob) -> Taken:
        """A job past the head of the rotation (the late binder may bind
        one) moves no turn, as with one balancer."""
        head, since = queue.peek(), queue.served
        if head is None or head.prompt_id != job.prompt_id:
            return Move(since, since, head=False)
        if self._elsewhere(since, job.tenant):
            return "wait"
        return Move(since, (job.tenant,))

    def condition(self, move: Move) -> TurnCheck | None:
        """(key, since, to) for the script that checks and moves the turn in
        the step that takes a slot (slots.py); None when `move` neither
        checks nor moves it."""
        return (self.key, encode(move.since), encode(move.to)) if move.head else None

    async def commit(self, move: Move) -> bool:
        if not move.head:
            return True
        try:
            return await self.move(move.since, move.to)
        except RedisError as exc:
            self.outage.failed(exc)
            return True  # this replica's own turn

    def _elsewhere(self, since: Served, tenant: Tenant) -> bool:
        """The tenant next in turn is not `tenant` (its jobs wait on another
        replica), and this replica has not left it the turn for DEFER yet."""
        after = rotation(self._pool | {tenant}, since)[0]
        if after == tenant:
            self._deferred = None
            return False
        now = self.clock()
        if self._deferred is None or self._deferred[:2] != (since, after):
            self._deferred = (since, after, now)
        return now - self._deferred[2] < DEFER

    async def undo(self, move: Move) -> None:
        if not move.head or move.since == move.to:
            return
        try:
            await self.move(move.to, move.since)
        except RedisError as exc:
            self.outage.failed(exc)
