"""Fair sharing per API key: a token bucket on prompts per second and a cap
on a key's unfinished jobs. Time is injected."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from balancer.config.access_settings import ApiKey

Clock = Callable[[], float]
MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`rate` per second, up to `burst` at once, per name (a key, a peer).
    The least recently used buckets are forgotten beyond MAX_BUCKETS."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def wait(self, name: str, rate: float, burst: float) -> float | None:
        """None if `name`'s bucket holds a token now (none is taken), else
        seconds until it will."""
        bucket = self._refilled(name, rate, burst)
        return None if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / rate

    def spend(self, name: str, rate: float, burst: float) -> float | None:
        """Take one token from `name`'s bucket: None, or seconds until one is there."""
        wait = self.wait(name, rate, burst)
        if wait is None:
            self._buckets[name].tokens -= 1.0
        return wait

    def give_back(self, name: str, rate: float, burst: float) -> None:
        bucket = self._refilled(name, rate, burst)
        bucket.tokens = min(burst, bucket.tokens + 1.0)

    def _refilled(self, name: str, rate: float, burst: float) -> Bucket:
        now = self.clock()
        bucket = self._buckets.setdefault(name, Bucket(burst, now))
        self._buckets.move_to_end(name)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        return bucket


def burst_of(key: ApiKey) -> float:
    return float(key.burst or max(1.0, key.rate or 1.0))


class Buckets(Protocol):
    """Token buckets by name, `rate` per second up to `burst`: in this
    process (one balancer), or shared by every replica (Redis)."""

    async def take(self, name: str, rate: float, burst: float) -> float | None:
        """Take one token: None, or seconds until one is there (none taken)."""
        ...

    async def give_back(self, name: str, rate: float, burst: float) -> None:
        """Return a token taken for something that did not happen."""
        ...


class LocalBuckets:
    """The buckets of one balancer, in its memory."""

    def __init__(self, clock: Clock) -> None:
        self.limiter = RateLimiter(clock)

    async def take(self, name: str, rate: float, burst: float) -> float | None:
        return self.limiter.spend(name, rate, burst)

    async def give_back(self, name: str, rate: float, burst: float) -> None:
        self.limiter.give_back(name, rate, burst)


class KeyRate:
    """One key's prompt rate, as the submitter's admission step uses it:
    taken as the last rule, given back by a prompt then not recorded."""

    def __init__(self, buckets: Buckets, name: str, rate: float, burst: float) -> None:
        self.buckets = buckets
        self.name = name
        self.rate = rate
        self.burst = burst

    async def take(self) -> float | None:
        return await self.buckets.take(self.name, self.rate, self.burst)

    async def give_back(self) -> None:
        await self.buckets.give_back(self.name, self.rate, self.burst)


def key_rate(buckets: Buckets, key: ApiKey) -> KeyRate | None:
    """The key's allowance; None when the key has no rate limit."""
    return None if key.rate is None else KeyRate(buckets, key.name, key.rate, burst_of(key))


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
