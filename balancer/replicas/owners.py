"""Which replica follows each unfinished job: one Redis hash,
`<prefix>owners` (prompt_id -> replica name), next to the leases.

A replica records itself as a job's owner before the job is stored (so no
stored unfinished job is ever without one, but for a moment a finished or
never-stored one is), and removes the record when the job ends. Adoption is
one Lua script: it drops the entries of lapsed leases and, in the same step,
moves every job whose owner has no live lease to the adopting replica; of
two replicas adopting at once one gets each job, the other nothing. The
dead replica's entry is gone with it, so if it was only stalled, its next
renewal fails and it knows it lost them (leases.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.jobs.events import JobEvent
from balancer.logs import get_logger
from balancer.replicas.leases import KEY as LEASES
from balancer.store.model import StoreUnavailable

log = get_logger("balancer.replicas")

KEY = "owners"  # after the store's prefix

# Phases after which a job is followed by nobody.
ENDS = frozenset({"completed", "failed", "interrupted", "cancelled", "rejected"})

# KEYS: leases, owners. ARGV: me, now, take mine ('1': a start, whose jobs
# recorded under this name are a former process's), then ids of stored jobs
# that may have no owner recorded. Answers {id, former owner} per job taken.
ADOPT = """
local me, now, mine = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local alive = {}
local leases = redis.call('HGETALL', KEYS[1])
for i = 1, #leases, 2 do
  local ok, entry = pcall(cjson.decode, leases[i + 1])
  local at = ok and type(entry) == 'table' and tonumber(entry['renewed_at'])
  local lease = at and tonumber(entry['lease'])
  if lease and now - at <= lease then
    alive[leases[i]] = true
  elseif lease then
    redis.call('HDEL', KEYS[1], leases[i])
  end
end
local taken = {}
local owners = redis.call('HGETALL', KEYS[2])
for i = 1, #owners, 2 do
  local id, owner = owners[i], owners[i + 1]
  if (owner == me and mine) or (owner ~= me and not alive[owner]) then
    redis.call('HSET', KEYS[2], id, me)
    taken[#taken + 1] = {id, owner}
  end
end
for i = 4, #ARGV do
  if redis.call('HSETNX', KEYS[2], ARGV[i], me) == 1 then taken[#taken + 1] = {ARGV[i], ''} end
end
return taken
"""


@dataclass(frozen=True)
class Taken:
    prompt_id: str
    former: str  # the replica that followed it; empty: nobody was recorded


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Owners:
    def __init__(self, redis: Redis, me: str, clock: Clock, prefix: str) -> None:
        self.redis = redis
        self.key, self.leases = prefix + KEY, prefix + LEASES
        self.me = me
        self.clock = clock
        self._adopt: Callable[..., Awaitable[list[list[bytes]]]] = redis.register_script(ADOPT)

    async def claim(self, prompt_id: str) -> bool:
        """Record this replica as the owner of a job about to be stored; False
        when a record is there already (the id is taken, or a stale record).
        Redis away: StoreUnavailable, and the job is not accepted."""
        try:
            return bool(await self.redis.hsetnx(self.key, prompt_id, self.me))
        except RedisError as exc:
            raise StoreUnavailable(f"job owner not recorded: {exc}") from exc

    async def confirm(self, prompt_id: str) -> None:
        """A job was stored as new over a stale record: it is this replica's."""
        try:
            await self.redis.hset(self.key, prompt_id, self.me)
        except RedisError as exc:
            raise StoreUnavailable(f"job owner not recorded: {exc}") from exc

    async def release(self, prompt_id: str) -> None:
        """Nobody follows it any more (it ended, or was never stored)."""
        try:
            await self.redis.hdel(self.key, prompt_id)
        except RedisError as exc:
            log.warning("job_owner_release_failed", prompt_id=prompt_id, error=str(exc))

    async def adopt(self, mine: bool, unrecorded: Sequence[str] = ()) -> list[Taken]:
        """Take every job whose owner's lease is gone (and, `mine`, those
        recorded under this replica's name, and the `unrecorded` ids nobody
        owns). Raises RedisError."""
        args = [self.me, self.clock(), "1" if mine else "0", *unrecorded]
        rows = await self._adopt(keys=[self.leases, self.key], args=args)
        return [Taken(_text(pid), _text(former)) for pid, former in rows]

    async def job_event(self, event: JobEvent) -> None:
        if event.phase in ENDS:
            await self.release(event.prompt_id)
