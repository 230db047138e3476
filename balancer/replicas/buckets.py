"""Rate-limit buckets shared by every replica: a key limited to N prompts a
second gets N a second from the pool, not N from each replica.

One hash per bucket, `<prefix>rate:<name>` (tokens, and when they were
counted), refilled and taken from by one Lua script, so two replicas never
spend the same token. Time is the replicas' wall clock, passed in (as for
leases); a clock behind the bucket's refills nothing. A bucket left alone
until it is full again has no state worth keeping: Redis drops it then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.backends.state import Clock
from balancer.store.model import StoreUnavailable

# KEYS[1] the bucket; ARGV: now, rate, burst, 'take' or 'give'.
# Answers '' (taken, or given back) or the seconds until a token is there.
BUCKET = """
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(held[1]) or burst, tonumber(held[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local wait = ''
if ARGV[4] == 'take' then
  if tokens >= 1 then tokens = tokens - 1 else wait = tostring((1 - tokens) / rate) end
else
  tokens = math.min(burst, tokens + 1)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


class RedisBuckets:
    """The `Buckets` of every replica, in Redis. Redis unreachable (or
    silent for `timeout` seconds): StoreUnavailable, so the prompt gets 503
    `store_unavailable` rather than a limit nobody counted."""

    def __init__(self, redis: Redis, prefix: str, clock: Clock, timeout: float) -> None:
        self.prefix = prefix + "rate:"
        self.clock = clock
        self.timeout = timeout
        self._script: Callable[..., Awaitable[bytes]] = redis.register_script(BUCKET)

    async def _call(self, name: str, rate: float, burst: float, op: str) -> bytes:
        args = [repr(self.clock()), repr(rate), repr(burst), op]
        try:
            async with asyncio.timeout(self.timeout):
                return await self._script(keys=[self.prefix + name], args=args)
        except (RedisError, TimeoutError) as exc:
            raise StoreUnavailable(f"rate limit not shared: {type(exc).__name__}") from exc

    async def take(self, name: str, rate: float, burst: float) -> float | None:
        wait = await self._call(name, rate, burst, "take")
        return float(wait) if wait else None

    async def give_back(self, name: str, rate: float, burst: float) -> None:
        await self._call(name, rate, burst, "give")
