"""Fair sharing per API key: a token bucket on prompts per second and a cap
on a key's unfinished jobs. Time is injected."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from balancer.config.model import ApiKey

Clock = Callable[[], float]


@dataclass
class Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`rate` prompts per second, up to `burst` at once (default: max(1, rate))."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._buckets: dict[str, Bucket] = {}

    def take(self, key: ApiKey) -> float | None:
        """None if the key may submit now, else seconds until it may."""
        if key.rate is None:
            return None
        burst = float(key.burst or max(1.0, key.rate))
        now = self.clock()
        bucket = self._buckets.setdefault(key.name, Bucket(burst, now))
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * key.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / key.rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
