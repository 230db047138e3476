"""What the balancer knows about one backend, and how that knowledge ages.

Load is counted from the newest probe plus the prompts the balancer sent that
the probe cannot have seen yet: a prompt whose POST is still in flight, or one
accepted after the probe's request left. Counting them keeps a burst of
submissions from all landing on the backend that looked idle a second ago.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from balancer.config.backend_settings import BackendSettings, ProbeSettings
from balancer.logs import get_logger

log = get_logger("balancer.backends")

Clock = Callable[[], float]

RECENT_RUNS = 20
# Runs observed before a backend's speed counts.
MIN_RUNS = 3


@dataclass(frozen=True)
class LoadSnapshot:
    """One successful probe: `/queue` and `/system_stats` as of `taken_at`.

    `taken_at` is when the probe's requests left, so anything the balancer
    dispatched after it is not in these numbers.
    """

    taken_at: float
    running: tuple[str, ...]
    pending: tuple[str, ...]
    vram_total: int | None
    vram_free: int | None
    # The /system_stats answer as the backend gave it, and when it was asked
    # (every `probe.stats_interval`, so it may be older than `taken_at`).
    stats: Any = field(default=None, compare=False, repr=False)
    stats_at: float = 0.0

    @property
    def queue_size(self) -> int:
        return len(self.running) + len(self.pending)


class Backend:
    """Health, freshest load data and unseen dispatches of one backend.

    Every scheduling decision reads each backend, so what it needs (`name`,
    `newest`, `unseen`, `run_time`, `speed`) are plain attributes kept as
    they change, not properties worked out per read."""

    def __init__(self, settings: BackendSettings, order: int) -> None:
        self.settings = settings
        self.name = settings.name  # a backend keeps its name for its life
        self.order = order
        self.healthy = False
        self.failures = 0
        self.successes = 0
        self.snapshot: LoadSnapshot | None = None
        self.last_error: str | None = None
        self.inflight = 0
        # Prompts sent to it that its latest probe or push has not counted.
        self.unseen = 0
        # Run times of its latest jobs (seconds), for its speed.
        self._recent_runs: deque[float] = deque(maxlen=RECENT_RUNS)
        self._accepted_at: deque[float] = deque()
        # The client_id of the open channel; None while the channel is down.
        self.channel_id: str | None = None
        # queue_remaining from the newest `status` push, and when it came.
        self.pushed: tuple[float, int] | None = None
        # How many `status` pushes came: each says its queue (and so its
        # /queue and /history) changed.
        self.pushes = 0
        # (as of when, queue size) from the newer of the last probe and push,
        # kept as they arrive (every scheduling decision reads it).
        self.newest: tuple[float, int] | None = None
        # The channel that was up when the newest reading came: while it
        # stays up, its pushes tell every change since (see `vouch`).
        self.read_on: str | None = None
        self.run_time: float | None = None  # the median of recent run times
        # run_time once there are MIN_RUNS runs to judge its speed by.
        self.speed: float | None = None
        # Why it takes no new prompts (vram, manual, config, removed); see
        # balancer.backends.drain. `freed` is set once POST /free was sent in
        # the current drain episode.
        self.drain_reasons: set[str] = set()
        self.freed = False
        # When the balancer last received anything from it (a probe answer,
        # a channel message, a proxied response): a sign of life.
        self.alive_at: float | None = None
        # The state the log last reported ("up", "down"; None before any probe).
        self._reported: str | None = None

    @property
    def draining(self) -> bool:
        return bool(self.drain_reasons)

    @property
    def url(self) -> str:
        return self.settings.url

    def start_over(self) -> None:
        """A new URL under this name: nothing known about it holds."""
        self.healthy = False
        self.successes = 0
        self.snapshot = None
        self.pushed = None
        self.newest = None

    def saw_life(self, now: float) -> None:
        self.alive_at = now

    def alive_since(self, when: float) -> bool:
        return self.alive_at is not None and self.alive_at >= when

    def record_success(self, snapshot: LoadSnapshot, probe: ProbeSettings) -> bool:
        """Store a probe result; return True when this flips the backend up."""
        self.snapshot = snapshot
        self.read_on = self.channel_id
        self._seen()
        self.failures = 0
        self.successes += 1
        self.last_error = None
        self._forget_accepted_before(snapshot.taken_at)
        if not self.healthy and self.successes >= probe.healthy_after:
            self.healthy = True
            self._reported = "up"
            log.info("backend_up", backend=self.name, queue=snapshot.queue_size)
            return True
        return False

    def record_run(self, seconds: float) -> None:
        """The median of recent run times is the speed: with mixed job sizes
        a mean would swing with every long job; the median follows the
        common one."""
        self._recent_runs.append(seconds)
        self.run_time = statistics.median(self._recent_runs)
        self.speed = self.run_time if len(self._recent_runs) >= MIN_RUNS else None

    def record_push(self, queue_remaining: int, now: float) -> None:
        """A `status` push from the channel: the queue count as of `now`.
        The scheduler uses the newer of the latest probe and the latest push."""
        self.pushed = (now, queue_remaining)
        self.pushes += 1
        self.read_on = self.channel_id
        self._seen()
        self._forget_accepted_before(now)

    def vouch(self, now: float) -> bool:
        """A probe round that pinged this backend over its channel and got
        an answer: while the channel its newest reading came over is still
        up, that reading holds as of `now` (a queue change would have been
        pushed). False when it cannot be vouched for (no reading, or
        another channel). Never moves the reading back (rounds overlap)."""
        newest = self.newest
        if newest is None or self.channel_id is None or self.read_on != self.channel_id:
            return False
        self.newest = (max(now, newest[0]), newest[1])
        return True

    def _seen(self) -> None:
        """The newer of the last probe and the last push."""
        snapshot = self.snapshot
        probed = None if snapshot is None else (snapshot.taken_at, snapshot.queue_size)
        self.newest = max((x for x in (probed, self.pushed) if x is not None), default=None)

    def _forget_accepted_before(self, when: float) -> None:
        while self._accepted_at and self._accepted_at[0] <= when:
            self._accepted_at.popleft()
        self._count_unseen()

    def _count_unseen(self) -> None:
        self.unseen = self.inflight + len(self._accepted_at)

    def record_failure(self, error: str, probe: ProbeSettings, may_go_down: bool = True) -> bool:
        """Count a failed probe; return True when this flips the backend down
        (never when `may_go_down` is false)."""
        self.successes = 0
        self.failures += 1
        self.last_error = error
        flipped = may_go_down and self.healthy and self.failures >= probe.unhealthy_after
        if flipped:
            self.healthy = False
        if self.healthy and self.failures == 1:
            # Up still: one slow or failed answer is not death.
            log.warning(
                "backend_probe_failed",
                backend=self.name,
                reason=error,
                down_after=probe.unhealthy_after,
            )
        self._report_down(error, "probe")
        return flipped

    def mark_down(self, error: str) -> None:
        """A request failed to connect: do not wait for the prober to agree."""
        self.healthy = False
        self.successes = 0
        self.last_error = error
        self._report_down(error, "dispatch")

    def _report_down(self, reason: str, seen_by: str) -> None:
        """Log `backend_down` once per episode: on the change from up, and on
        the first failure of a backend never seen up."""
        if not self.healthy and self._reported != "down":
            self._reported = "down"
            log.warning("backend_down", backend=self.name, reason=reason, seen_by=seen_by)

    def dispatch_started(self) -> None:
        self.inflight += 1
        self._count_unseen()

    def dispatch_finished(self, accepted: bool, now: float) -> None:
        self.inflight -= 1
        if accepted:
            self._accepted_at.append(now)
        self._count_unseen()

    def queue_size(self) -> int | None:
        """queue_running + queue_pending as last seen."""
        newest = self.newest
        return None if newest is None else newest[1]

    def load(self) -> int | None:
        """The queue size plus unseen dispatches; None if unknown."""
        size = self.queue_size()
        return None if size is None else size + self.unseen

    def is_fresh(self, now: float, probe: ProbeSettings) -> bool:
        newest = self.newest
        return newest is not None and now - newest[0] <= probe.stale_after
