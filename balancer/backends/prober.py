"""The prober: GET /queue and /system_stats of every backend on an interval.

A backend goes down after `unhealthy_after` consecutive failures and up after
`healthy_after` successes, so one slow answer (ComfyUI can stall ~0.3 s after
a job) is not death. Unresponsive is not dead: a probe that times out while
the backend answers other calls (channel events, proxied responses) is not a
failure, and timeouts never take the last healthy backend out; a refused or
reset connection always counts. Data ages out through `Backend.is_fresh`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock, LoadSnapshot
from balancer.config.backend_settings import ProbeSettings
from balancer.logs import get_logger
from balancer.upstream import Upstream, UpstreamError, UpstreamTimeout, is_death

log = get_logger("balancer.prober")

SLICES = 10  # groups a round's starts are spread over
# Probes in flight at once: with 1,000 backends, a probe waits for a slot
# rather than time out behind hundreds of answers the balancer has yet to
# read (its timeout would then measure the balancer, not the backend).
PROBES_AT_ONCE = 64

# Called after every successful probe of a backend (job reconciliation, drains).
ProbeListener = Callable[[Backend, LoadSnapshot], Awaitable[None]]
# Called after every failed probe, with whether it showed a death (refused or
# reset) rather than a stall (timeout, bad answer): job failover.
FailureListener = Callable[[Backend, bool], Awaitable[None]]
# Of these backends, those that answer a ping over their event channel
# within a timeout (`Channels.answering`).
Ping = Callable[[Sequence[Backend], float], Awaitable[Collection[Backend]]]


@dataclass(frozen=True)
class TimedOut:
    """A probe that timed out, judged at the end of its round."""

    backend: Backend
    error: UpstreamTimeout
    started: float


def parse_queue(data: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """prompt_ids running and pending from a GET /queue answer."""
    if not isinstance(data, dict):
        raise UpstreamError("GET /queue: not an object")

    def ids(key: str) -> tuple[str, ...]:
        items = data.get(key)
        if not isinstance(items, list):
            raise UpstreamError(f"GET /queue: {key} is not a list")
        return tuple(str(item[1]) for item in items if isinstance(item, list) and len(item) > 1)

    return ids("queue_running"), ids("queue_pending")


def parse_vram(data: Any) -> tuple[int | None, int | None]:
    """(vram_total, vram_free) of the first device of a /system_stats answer."""
    devices = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devices, list) or not devices or not isinstance(devices[0], dict):
        return None, None
    total, free = devices[0].get("vram_total"), devices[0].get("vram_free")
    ok = isinstance(total, int) and isinstance(free, int)
    return (total, free) if ok else (None, None)


def pool_summary(registry: Registry) -> dict[str, Any]:
    """Which backends are up, and why the others are not."""
    backends = list(registry)
    up = [b.name for b in backends if b.healthy]
    down = {b.name: b.last_error or "not probed yet" for b in backends if not b.healthy}
    return {"summary": f"{len(up)} of {len(backends)} backends up", "up": up, "down": down}


class Prober:
    def __init__(
        self,
        registry: Registry,
        upstream: Upstream,
        settings: ProbeSettings,
        clock: Clock,
        on_failure: FailureListener,
        listeners: Sequence[ProbeListener],
        on_down: Sequence[Callable[[str], None]],
        ping: Ping,
        wake: Callable[[], None],
        wanted: Callable[[Backend], bool],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ping = ping
        # Whether the balancer wants a backend read every channel_interval
        # whatever its pushes say (its jobs there: see `due`).
        self.wanted = wanted
        # Told when a probe changed what a backend can take (`_takes`), and
        # once at the end of every round (the late binder: see `_end_round`).
        self.wake = wake
        self._slots = asyncio.Semaphore(PROBES_AT_ONCE)
        # Backends whose probe has not come back yet: a later round skips them.
        self._probing: set[Backend] = set()
        self.sleep = sleep
        self.registry = registry
        self.upstream = upstream
        self.settings = settings
        self.clock = clock
        self.on_failure = on_failure
        self.on_down = tuple(on_down)
        self.rounds = 0
        self.listeners = tuple(listeners)

    async def probe_all(self) -> None:
        """One round: every backend at once, each bounded by the probe timeout."""
        await self._end_round(await asyncio.gather(*(self.probe(b) for b in self.registry)))

    async def probe_spread(self) -> None:
        """One round of the backends that are `due`, whose starts are spread
        in `SLICES` groups over half an interval (the whole interval while
        any of them was never probed: at start-up), so 1,000 backends are
        not all asked at once (their answers would then all arrive at once,
        and the first round's would time out behind each other). A backend
        whose probe from an earlier round is still out is left to it."""
        now = self.clock()
        backends: list[Backend] = []
        vouched: list[Backend] = []
        for backend in self.registry:
            if backend not in self._probing:
                (backends if self.due(backend, now) else vouched).append(backend)
        pings = asyncio.create_task(self._vouch(vouched, now)) if vouched else None
        slices = max(1, min(SLICES, len(backends)))
        first = any(b.snapshot is None for b in backends)
        gap = self.settings.interval / (1 if first else 2) / slices
        started = []
        for index in range(slices):
            if index:
                await self.sleep(gap)
            started += [asyncio.create_task(self.probe(b)) for b in backends[index::slices]]
        await self._end_round(await asyncio.gather(*started))
        if pings is not None:
            await pings

    async def _vouch(self, backends: Sequence[Backend], now: float) -> None:
        """Backends not due: a ping over each one's channel (all sent at
        once, one wait for the answers), answered, vouches for its newest
        reading as of `now`. Unanswered is not a failure: its reading ages,
        and once it would go stale the backend is due."""
        answered = await self.ping(backends, self.settings.timeout)
        heard = self.clock()
        for backend in answered:
            backend.saw_life(heard)
            backend.vouch(now)

    async def _end_round(self, timeouts: Sequence[TimedOut | None]) -> None:
        """Timeouts are judged once the round's answers and deaths are in,
        so whether another backend is still healthy does not depend on
        which probe came back first."""
        for timeout in timeouts:
            if timeout is not None:
                await self._failed(timeout.backend, timeout.error, timeout.started)
        self.rounds += 1
        # Once a round, whatever changed: what the binder waits for may have
        # come without a probe changing a backend (a catalogue read, the
        # rent of a job waiting for a better backend running out).
        self.wake()

    def due(self, backend: Backend, now: float) -> bool:
        """Whether a periodic round probes this backend. Always while it is
        down or its channel is; while the channel is up, its `status` pushes
        bring every queue change, so a round pings it instead and, answered,
        vouches for its newest reading (`Backend.vouch`), and asks only once
        its reading could go stale before the next round (pings unanswered:
        older than `stale_after` less one interval and one timeout), or came
        over another channel; else every `channel_interval` while it may
        hold something (the probe finds ended jobs nobody was told of), and
        every `idle_interval` while nothing says it does (`_holds`). 1,000
        idle backends then cost about 17 probes and 1,000 pings a second
        instead of 100 probes (every channel_interval) or 400 (none)."""
        snapshot, newest = backend.snapshot, backend.newest
        if backend.channel_id is None or snapshot is None or newest is None:
            return True
        if not backend.healthy or backend.read_on != backend.channel_id:
            return True
        margin = self.settings.interval + self.settings.timeout
        if now - newest[0] >= self.settings.stale_after - margin:
            return True
        age = now - snapshot.taken_at
        if age >= self.settings.idle_interval:
            return True
        return age >= self.settings.channel_interval and self._holds(backend, snapshot, newest)

    def _holds(self, backend: Backend, snapshot: LoadSnapshot, newest: tuple[float, int]) -> bool:
        """Whether anything says the backend holds something: its newest
        reading (a push or a probe), its last read (what /balancer/status
        shows of it), prompts on their way to it, or the balancer
        (`wanted`: its jobs there, which an empty push does not end)."""
        queued = newest[1] or snapshot.queue_size or backend.unseen
        return bool(queued) or backend.draining or self.wanted(backend)

    async def probe(self, backend: Backend) -> TimedOut | None:
        """Probe one backend and record an answer or a failure now; a
        timeout is returned for the round to judge (`_end_round`). The
        binder is woken only when this changed what the backend can take:
        1,000 idle backends probed 100 times a second gave it 100 wake-ups
        with nothing to do, each a look at every backend."""
        self._probing.add(backend)
        try:
            before = self._takes(backend)
            timed_out = await self._probe(backend)
        finally:
            self._probing.discard(backend)
        if self._takes(backend) != before:
            self.wake()
        return timed_out

    def _takes(self, backend: Backend) -> tuple[object, ...]:
        """What the late binder sees of a backend: up, its reading fresh, its
        load (room freed, or a second job that could be stolen) and why it is
        drained."""
        fresh = backend.is_fresh(self.clock(), self.settings)
        return backend.healthy, fresh, backend.load(), frozenset(backend.drain_reasons)

    async def _probe(self, backend: Backend) -> TimedOut | None:
        timeout = self.settings.timeout
        last = backend.snapshot
        started = self.clock()
        try:
            async with self._slots:  # its timeout runs from when it is sent
                started = self.clock()
                stats_due = last is None or started - last.stats_at >= self.settings.stats_interval
                paths = ("/queue", "/system_stats") if stats_due else ("/queue",)
                # One after the other: over one kept-alive connection (a
                # first probe opens one, not two); each timed from its send.
                get = self.upstream.get_json
                answers = [
                    await get(backend.url + path, timeout=timeout, from_send=True) for path in paths
                ]
            running, pending = parse_queue(answers[0])
        except UpstreamTimeout as exc:
            return TimedOut(backend, exc, started)
        except UpstreamError as exc:
            await self._failed(backend, exc, started)
            return None
        backend.saw_life(self.clock())
        if stats_due or last is None:
            stats, stats_at = answers[-1], started
        else:
            stats, stats_at = last.stats, last.stats_at
        total, free = parse_vram(stats)
        snapshot = LoadSnapshot(started, running, pending, total, free, stats, stats_at)
        backend.record_success(snapshot, self.settings)
        for listener in self.listeners:
            await listener(backend, snapshot)
        return None

    async def _failed(self, backend: Backend, exc: UpstreamError, started: float) -> None:
        """A refused, reset or garbled probe counts toward down. A timeout is
        unresponsive, not dead: it does not count while the backend sent
        anything else since the previous round, and never takes the last
        healthy backend out."""
        timed_out = isinstance(exc, UpstreamTimeout)
        if timed_out and backend.alive_since(started - self.settings.interval):
            backend.last_error = f"probe timed out while the backend answers other calls: {exc}"
            return
        others = any(b.healthy for b in self.registry if b is not backend)
        if backend.record_failure(str(exc), self.settings, may_go_down=others or not timed_out):
            for down in self.on_down:
                down(backend.name)
        await self.on_failure(backend, is_death(exc))

    async def run(self) -> None:
        """Probe forever, a round every `interval`; the caller cancels the
        task at shutdown, and with it the rounds under way. The next round
        does not wait for the last: one backend slow to answer a probe or a
        ping (up to a timeout) would stretch every round, the readings the
        rounds vouch for would then age past `due`, and 1,000 backends
        would all be asked over HTTP each round, which stretches the rounds
        further. After the first round, one line says how the pool looks."""
        await self.probe_spread()
        log.info("pool", **pool_summary(self.registry))
        async with asyncio.TaskGroup() as rounds:
            while True:
                await self.sleep(self.settings.interval)
                rounds.create_task(self.probe_spread())
