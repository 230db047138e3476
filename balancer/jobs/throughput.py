"""How fast jobs end here lately: when a full queue will have room, for its
429's `Retry-After`."""

from __future__ import annotations

import math
from collections import deque

from balancer.backends.state import Clock


class Throughput:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._done_at: deque[float] = deque(maxlen=50)

    def ended(self) -> None:
        """A job ended (completed, failed or interrupted) now."""
        self._done_at.append(self.clock())

    def retry_after(self, waiting: int) -> int:
        """Seconds until `waiting` jobs have gone, at the recent rate."""
        done = self._done_at
        if len(done) < 2 or done[-1] <= done[0]:
            return 5
        rate = (len(done) - 1) / (done[-1] - done[0])
        return max(1, min(600, math.ceil(waiting / rate)))
