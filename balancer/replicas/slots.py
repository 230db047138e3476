"""Room on each backend, shared between replicas: a prompt is sent only
with a slot taken in Redis, so two replicas never fill the same slot.

A backend has `capacity` slots (the one it runs plus
`routing.max_pending_per_backend`). Its reservations are one sorted set,
`balancer:slots:<backend>`: prompt_id -> when the reservation expires. One Lua
script drops the expired ones and takes a slot only while fewer than
`capacity` are held, so the check and the take are one step. The replica
that took a slot renews it every second (with its lease) and gives it back
when the job ends there, is taken back or was never accepted; a replica that
dies stops renewing, and its slots expire one lease later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.jobs.events import JobEvent
from balancer.logs import get_logger
from balancer.replicas.outage import Outage

log = get_logger("balancer.replicas")

PREFIX = "balancer:slots:"
# Redis drops a backend's set this long (ms) after its last write: nobody
# renews it any more (every replica stopped).
FORGET_MS = 60_000

TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local mine = redis.call('ZSCORE', KEYS[1], ARGV[4])
if mine or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""

# Phases after which a job holds no slot on the backend it was sent to.
GIVES_BACK = frozenset({"completed", "failed", "interrupted", "cancelled", "retried", "rejected"})


class Slots:
    def __init__(self, redis: Redis, lease: float, clock: Clock) -> None:
        self.redis = redis
        self.lease = lease
        self.clock = clock
        self.held: dict[str, str] = {}  # prompt_id -> backend, this replica's
        self._take: Callable[..., Awaitable[int]] = redis.register_script(TAKE)
        self.outage = Outage("slot_take")

    async def take(self, backend: str, prompt_id: str, capacity: int) -> bool:
        """A slot on `backend` for `prompt_id` (again: renewed); False when
        every slot is held, or Redis is unreachable (no room known is no room)."""
        before = self.held.get(prompt_id)
        if before is not None and before != backend:
            await self.give_back(prompt_id)
        now = self.clock()
        args = [now, now + self.lease, capacity, prompt_id, FORGET_MS]
        try:
            taken = bool(await self._take(keys=[PREFIX + backend], args=args))
        except RedisError as exc:
            self.outage.failed(exc)
            return False
        self.outage.ok()
        if taken:
            self.held[prompt_id] = backend
        return taken

    async def give_back(self, prompt_id: str) -> None:
        """Free its slot; Redis away, it expires one lease later."""
        backend = self.held.pop(prompt_id, None)
        if backend is None:
            return
        try:
            await self.redis.zrem(PREFIX + backend, prompt_id)
        except RedisError as exc:
            log.warning("slot_give_back_failed", backend=backend, error=str(exc))

    async def renew(self) -> None:
        """Push the expiry of every slot this replica holds one lease ahead
        (only those still held: one that expired stays free). Raises RedisError."""
        if not self.held:
            return
        expires = self.clock() + self.lease
        async with self.redis.pipeline(transaction=False) as pipe:
            for prompt_id, backend in self.held.items():
                pipe.zadd(PREFIX + backend, {prompt_id: expires}, xx=True)
                pipe.pexpire(PREFIX + backend, FORGET_MS)
            await pipe.execute()

    async def holders(self, backend: str) -> list[str]:
        """The prompt_ids holding a slot on `backend` now."""
        raw = await self.redis.zrangebyscore(PREFIX + backend, f"({self.clock()}", "+inf")
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]

    async def job_event(self, event: JobEvent) -> None:
        if event.phase in GIVES_BACK:
            await self.give_back(event.prompt_id)
