"""Draining: a backend that takes no new prompts while its pinned work goes on.

A backend drains for one or more reasons (`vram`, `manual`, `config`,
`removed`) and takes prompts again only when every reason has cleared. The
VRAM reason follows used VRAM with hysteresis: over `vram_limit` it is added,
below `vram_resume` it is removed, in between nothing changes, so a card
hovering at its limit does not flap.

A drain ends (`balancer.ops.drain_end`) once the backend is empty by its
newest reading, an HTTP probe or a `status` push over its channel, whichever
came last (`is_idle`). Unknown is not idle: with no reading, or one gone
stale, a backend is never taken to be empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from balancer.backends.state import Backend, Clock, LoadSnapshot
from balancer.config.backend_settings import BackendSettings, ProbeSettings
from balancer.config.thresholds import resume_bytes
from balancer.logs import get_logger
from balancer.upstream import Upstream, UpstreamError

log = get_logger("balancer.drain")

Reason = Literal["vram", "manual", "config", "removed"]

# (backend name, reason, drained: True on drain, False on undrain)
DrainListener = Callable[[str, str, bool], None]


def vram_drained(
    settings: BackendSettings,
    vram_total: int | None,
    vram_free: int | None,
    drained_now: bool,
) -> bool:
    """Whether the `vram` reason should hold after a probe.

    Over the limit: drained. Below resume: not drained. In between, or with
    no limit or no VRAM figures: unchanged (a probe that lacks figures is no
    evidence that the card recovered)."""
    limit = settings.vram_limit
    if limit is None:
        return False
    if vram_total is None or vram_free is None:
        return drained_now
    used = vram_total - vram_free
    if used > limit.bytes_of(vram_total):
        return True
    if used < resume_bytes(limit, settings.vram_resume, vram_total):
        return False
    return drained_now


def is_idle(backend: Backend, now: float, probe: ProbeSettings, follows_there: bool) -> bool:
    """Nothing in its queue by its newest reading (probe or push) while that
    reading is fresh, nothing on the way there, and no job the balancer
    follows there (`status` comes before a job's end on the channel: its
    end is read first). No reading, or a stale one, is not idle."""
    if not backend.is_fresh(now, probe) or backend.unseen:
        return False
    return backend.queue_size() == 0 and not follows_there


@dataclass(frozen=True)
class Idleness:
    """`is_idle` now: the clock, the probe settings and the jobs followed."""

    clock: Clock
    probe: ProbeSettings
    # Whether the balancer follows a job on the backend of this name.
    holds: Callable[[str], bool]

    def __call__(self, backend: Backend) -> bool:
        return is_idle(backend, self.clock(), self.probe, self.holds(backend.name))


class DrainWatch:
    """Draining backends to look at again: a new reading of one (a push), a
    change of its drain, or the end of a job there may have emptied it.
    Noted wherever that happens, without waiting (a channel's reader must
    not wait on a removal that stops that very channel), and taken by the
    one task that ends drains (`DrainEnds.run`)."""

    def __init__(self) -> None:
        self._noted: dict[Backend, None] = {}  # in the order noted
        self._wake = asyncio.Event()

    def note(self, backend: Backend) -> None:
        """Cheap for a backend that is not draining (every push comes here)."""
        if backend.draining:
            self._noted[backend] = None
            self._wake.set()

    async def take(self) -> list[Backend]:
        """The backends noted since the last take, once there is one."""
        await self._wake.wait()
        self._wake.clear()
        noted, self._noted = list(self._noted), {}
        return noted


class Drainer:
    """Adds and clears drain reasons, logs and reports every change, and sends
    `POST /free` to an idle drained backend once per drain episode (when
    `DrainEnds` finds it empty)."""

    def __init__(
        self,
        upstream: Upstream,
        freed: Callable[[str], None],
        listeners: Sequence[DrainListener],
        watch: DrainWatch,
    ) -> None:
        self.upstream = upstream
        # Told of every backend that starts to drain: it may be empty already.
        self.watch = watch
        # Told a backend's name once `POST /free` unloaded its models.
        self.freed = freed
        # Told every change of a drain reason (metrics).
        self.listeners = tuple(listeners)

    def drain(self, backend: Backend, reason: Reason) -> bool:
        """Add a reason; True if it was new."""
        if reason in backend.drain_reasons:
            return False
        backend.drain_reasons.add(reason)
        log.info("backend_drained", backend=backend.name, reason=reason)
        self._tell(backend.name, reason, True)
        self.watch.note(backend)
        return True

    def undrain(self, backend: Backend, reason: Reason) -> bool:
        """Clear a reason; True if it was set."""
        if reason not in backend.drain_reasons:
            return False
        backend.drain_reasons.discard(reason)
        still = sorted(backend.drain_reasons)
        log.info("backend_undrained", backend=backend.name, reason=reason, still=still)
        self._tell(backend.name, reason, False)
        if not backend.drain_reasons:
            backend.freed = False  # the episode is over
        return True

    def set(self, backend: Backend, reason: Reason, drained: bool) -> bool:
        return self.drain(backend, reason) if drained else self.undrain(backend, reason)

    def apply_settings(self, backend: Backend) -> None:
        """`drain: true` in the file is the `config` reason; a VRAM limit
        removed from the file clears the `vram` reason."""
        self.set(backend, "config", backend.settings.drain)
        if backend.settings.vram_limit is None:
            self.undrain(backend, "vram")

    async def on_probe(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        """Prober listener: VRAM hysteresis."""
        drained = vram_drained(
            backend.settings,
            snapshot.vram_total,
            snapshot.vram_free,
            "vram" in backend.drain_reasons,
        )
        self.set(backend, "vram", drained)

    def wants_free(self, backend: Backend) -> bool:
        return backend.settings.free_on_drain and backend.draining and not backend.freed

    async def free(self, backend: Backend) -> None:
        """`POST /free` to unload its models; `freed` is set before the call
        goes, so a second look while it is out sends none."""
        backend.freed = True
        body = b'{"unload_models": true}'
        try:
            reply = await self.upstream.call("POST", backend.url + "/free", body=body)
        except UpstreamError as exc:
            backend.freed = False  # try again after the next probe
            log.warning("free_failed", backend=backend.name, error=str(exc))
            return
        log.info("backend_freed", backend=backend.name, status=reply.status)
        if reply.status == 200:
            self.freed(backend.name)

    def _tell(self, name: str, reason: str, drained: bool) -> None:
        for listener in self.listeners:
            listener(name, reason, drained)
