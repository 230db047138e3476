"""Sending one job to one backend: choose it, pin, place files, forward.

The pin is recorded before the prompt is forwarded, so a follow-up that races
the answer (`/history/{id}` polled at once) already reaches the owner. The
prompt goes out with the backend channel's `client_id`; the client's own id
stays in the balancer's records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock
from balancer.catalog.fit import Fitter
from balancer.catalog.needs import Needs
from balancer.config.model import ProbeSettings
from balancer.errors import error_body
from balancer.jobs.events import JobEvent
from balancer.jobs.tracker import Tracker
from balancer.logs import get_logger
from balancer.scheduling import NoBackend, Picker, candidates_from
from balancer.store import Pin, Store, StoredJob
from balancer.upstream import Upstream, UpstreamConnectError, UpstreamError

log = get_logger("balancer.jobs")


@dataclass(frozen=True)
class Answer:
    """What to send the client: status, body bytes, extra headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def error_answer(
    status: int, type_: str, message: str, details: str = "", **headers: str
) -> Answer:
    return Answer(status, json.dumps(error_body(type_, message, details)).encode(), headers)


class BeforeDispatch(Protocol):
    """Runs after a backend is chosen and before the prompt is forwarded to it
    (for example: put the files the prompt references on that backend, and
    rename them in the prompt). Returns the request body to forward."""

    async def __call__(self, request: dict[str, Any], backend: Backend) -> dict[str, Any]: ...


async def nothing_before_dispatch(request: dict[str, Any], backend: Backend) -> dict[str, Any]:
    return request


@dataclass(frozen=True)
class Sent:
    """The backend answered: 200 (accepted) or its own refusal."""

    answer: Answer

    @property
    def accepted(self) -> bool:
        return self.answer.status == 200


@dataclass(frozen=True)
class Unreachable:
    """The connection was never made: the backend saw nothing."""


@dataclass(frozen=True)
class Broken:
    """The request failed after it left: the backend may or may not have it."""

    detail: str


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        picker: Picker,
        fitter: Fitter,
        store: Store,
        tracker: Tracker,
        upstream: Upstream,
        probe: ProbeSettings,
        clock: Clock,
        before_dispatch: BeforeDispatch = nothing_before_dispatch,
        wall: Clock = time.time,
    ) -> None:
        self.registry = registry
        self.wall = wall
        self.picker = picker
        self.fitter = fitter
        self.store = store
        self.tracker = tracker
        self.upstream = upstream
        self.probe = probe
        self.clock = clock
        self.before_dispatch = before_dispatch
        # Told every scheduling outcome ("chosen", "all_down", ...), for metrics.
        self.decision_listeners: list[Callable[[str], None]] = []

    def choose(
        self, needs: Needs, tried: set[str], count_misses: bool = True, rotate: bool = True
    ) -> Backend | NoBackend:
        """The best backend not yet tried for a prompt with these needs. Every
        outcome is reported to the decision listeners, except misses when
        `count_misses` is off (the late binder asks on every wake-up; only its
        choices are decisions)."""
        now = self.clock()
        left = [b for b in self.registry if b.name not in tried]
        candidates = candidates_from(left, now, self.probe, lambda n: self.fitter.fit(n, needs))
        decision = self.picker.pick(candidates, rotate)
        missed = isinstance(decision, NoBackend)
        if count_misses or not missed:
            outcome = decision.outcome if isinstance(decision, NoBackend) else "chosen"
            for listener in self.decision_listeners:
                listener(outcome)
        if isinstance(decision, NoBackend):
            return decision
        backend = self.registry.get(decision.name)
        assert backend is not None
        return backend

    async def send(
        self, job: StoredJob, backend: Backend, answer: bytes | None = None
    ) -> Sent | Unreachable | Broken:
        """Forward `job` to `backend`. `answer` is what the client was already
        told (a queued job); without it the backend's answer is the client's."""
        self.store.put_pin(
            Pin(job.prompt_id, backend.name, job.digest, b"", job.client_id, job.tenant)
        )
        started = self.clock()
        backend.dispatch_started()
        accepted = False
        try:
            forwarded = await self.before_dispatch(job.request, backend)
            forwarded = {**forwarded, "client_id": backend.channel_id}
            body = json.dumps(forwarded).encode()
            reply = await self.upstream.call("POST", backend.url + "/prompt", body=body)
            accepted = reply.status == 200
        except UpstreamConnectError as exc:
            self.store.remove_pin(job.prompt_id)
            backend.mark_down(str(exc))
            log.warning("dispatch_unreachable", prompt_id=job.prompt_id, backend=backend.name)
            return Unreachable()
        except UpstreamError as exc:
            self.store.remove_pin(job.prompt_id)
            log.warning("dispatch_failed", prompt_id=job.prompt_id, backend=backend.name)
            return Broken(str(exc))
        finally:
            backend.dispatch_finished(accepted, self.clock())
        if not accepted:
            self.store.remove_pin(job.prompt_id)
            log.info("rejected", prompt_id=job.prompt_id, backend=backend.name, status=reply.status)
            event = JobEvent(job.prompt_id, "rejected", backend.name, detail=str(reply.status))
            self.tracker.events.emit(event)
            return Sent(Answer(reply.status, reply.body, content_type=reply.content_type))
        return Sent(self._accepted(job, backend, answer or reply.body, started))

    def _accepted(self, job: StoredJob, backend: Backend, body: bytes, started: float) -> Answer:
        pin = Pin(job.prompt_id, backend.name, job.digest, body, job.client_id, job.tenant)
        self.store.put_pin(pin)
        attempts = job.attempts + 1
        self.store.put_job(
            replace(job, state="dispatched", backend=backend.name, attempts=attempts, answer=body)
        )
        ms = round((self.clock() - started) * 1000, 2)
        log.info("dispatched", prompt_id=job.prompt_id, backend=backend.name, dispatch_ms=ms)
        self.tracker.events.emit(JobEvent(job.prompt_id, "dispatched", backend.name))
        # submitted_at is wall time (it survives restarts); the tracker counts
        # on the monotonic clock.
        submitted = self.clock() - max(0.0, self.wall() - job.submitted_at)
        self.tracker.dispatched(job.prompt_id, backend.name, job.client_id, submitted)
        return Answer(200, body)
