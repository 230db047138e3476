"""Fair sharing per API key: a token bucket on prompts per second and a cap
on a key's unfinished jobs. Time is injected."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from balancer.config.model import ApiKey

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

    def take(self, key: ApiKey) -> float | None:
        """None if the key may submit now, else seconds until it may."""
        if key.rate is None:
            return None
        return self.spend(key.name, key.rate, float(key.burst or max(1.0, key.rate)))

    def spend(self, name: str, rate: float, burst: float) -> float | None:
        """Take one token from `name`'s bucket: None, or seconds until one is there."""
        now = self.clock()
        bucket = self._buckets.setdefault(name, Bucket(burst, now))
        self._buckets.move_to_end(name)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
