"""Draining: a backend that takes no new prompts while its pinned work goes on.

A backend drains for one or more reasons (`vram`, `manual`, `config`,
`removed`) and takes prompts again only when every reason has cleared. The
VRAM reason follows used VRAM with hysteresis: over `vram_limit` it is added,
below `vram_resume` it is removed, in between nothing changes, so a card
hovering at its limit does not flap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from balancer.backends.state import Backend, LoadSnapshot
from balancer.config.backend_settings import BackendSettings
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


def is_idle(backend: Backend) -> bool:
    """Nothing in its queue by the latest probe and nothing on the way there."""
    snap = backend.snapshot
    return snap is not None and snap.queue_size == 0 and backend.unseen == 0


class Drainer:
    """Adds and clears drain reasons, logs and reports every change, and sends
    `POST /free` to an idle drained backend once per drain episode."""

    def __init__(
        self,
        upstream: Upstream,
        freed: Callable[[str], None],
        listeners: Sequence[DrainListener],
    ) -> None:
        self.upstream = upstream
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
        """Prober listener: VRAM hysteresis, then free an idle drained backend."""
        drained = vram_drained(
            backend.settings,
            snapshot.vram_total,
            snapshot.vram_free,
            "vram" in backend.drain_reasons,
        )
        self.set(backend, "vram", drained)
        wants_free = backend.settings.free_on_drain and backend.draining and not backend.freed
        if wants_free and is_idle(backend):
            await self.free(backend)

    async def free(self, backend: Backend) -> None:
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
