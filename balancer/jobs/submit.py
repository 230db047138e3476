"""POST /prompt: choose a backend, pin the prompt_id, forward, answer.

The pin is recorded before the prompt is forwarded, so a follow-up that races
the answer (`/history/{id}` polled at once) already reaches the owner. An
identical retry of a known id returns the first answer and runs nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock
from balancer.config.model import ProbeSettings
from balancer.errors import error_body
from balancer.jobs.events import JobEvent
from balancer.jobs.ids import IdFactory, is_safe_prompt_id, mint_prompt_id, workflow_digest
from balancer.jobs.tracker import Tracker
from balancer.logs import get_logger
from balancer.scheduling import NoBackend, Picker, candidates_from
from balancer.store import Pin, Store
from balancer.upstream import Upstream, UpstreamConnectError, UpstreamError

log = get_logger("balancer.jobs")


@dataclass(frozen=True)
class Answer:
    """What to send the client: status, JSON body bytes, extra headers."""

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


class Submitter:
    def __init__(
        self,
        registry: Registry,
        picker: Picker,
        store: Store,
        tracker: Tracker,
        upstream: Upstream,
        probe: ProbeSettings,
        clock: Clock,
        new_id: IdFactory = mint_prompt_id,
        before_dispatch: BeforeDispatch = nothing_before_dispatch,
    ) -> None:
        self.registry = registry
        self.picker = picker
        self.store = store
        self.tracker = tracker
        self.upstream = upstream
        self.probe = probe
        self.clock = clock
        self.new_id = new_id
        self.before_dispatch = before_dispatch
        self._pending: dict[str, tuple[str, asyncio.Future[Answer]]] = {}
        # Told every scheduling outcome ("chosen", "all_down", ...), for metrics.
        self.decision_listeners: list[Callable[[str], None]] = []

    async def submit(self, request: dict[str, Any]) -> Answer:
        """`request` is the parsed POST /prompt body, already known to hold `prompt`."""
        prompt_id = request.get("prompt_id")
        if prompt_id is None:
            prompt_id = self.new_id()
        elif not is_safe_prompt_id(prompt_id):
            return error_answer(
                400,
                "invalid_prompt_id",
                "Invalid prompt_id",
                "prompt_id must be 1-128 characters of A-Z a-z 0-9 . _ -",
            )
        digest = workflow_digest(request["prompt"])
        known = await self._known_answer(prompt_id, digest)
        if known is not None:
            return known
        log.info("submitted", prompt_id=prompt_id)
        self.tracker.events.emit(JobEvent(prompt_id, "submitted"))
        submitted_at = self.clock()
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[prompt_id] = (digest, future)
        try:
            answer = await self._dispatch(
                prompt_id, digest, {**request, "prompt_id": prompt_id}, submitted_at
            )
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[prompt_id]
        future.set_result(answer)
        return answer

    async def _known_answer(self, prompt_id: str, digest: str) -> Answer | None:
        """The first answer for a retried id; a 400 for a reused one; None if new."""
        pending = self._pending.get(prompt_id)
        pin = self.store.get_pin(prompt_id)
        first_digest = pending[0] if pending else pin.digest if pin else None
        if first_digest is None:
            return None
        if first_digest != digest:
            return error_answer(
                400,
                "invalid_prompt_id",
                "prompt_id already used",
                f"prompt_id {prompt_id} belongs to a different workflow",
            )
        if pending:
            return await asyncio.shield(pending[1])
        assert pin is not None
        return Answer(200, pin.answer)

    async def _dispatch(
        self, prompt_id: str, digest: str, request: dict[str, Any], submitted_at: float
    ) -> Answer:
        """Try backends best-first; only a connection that was never made moves on."""
        tried: set[str] = set()
        while True:
            backend = self._choose(tried)
            if isinstance(backend, NoBackend):
                return self._no_backend(backend, tried)
            tried.add(backend.name)
            client_id = _str(request.get("client_id"))
            self.store.put_pin(Pin(prompt_id, backend.name, digest, b"", client_id))
            started = self.clock()
            backend.dispatch_started()
            accepted = False
            try:
                forwarded = await self.before_dispatch(request, backend)
                # Events come back on the backend's channel; the relay routes
                # them to the client by prompt_id.
                forwarded = {**forwarded, "client_id": backend.channel_id}
                body = json.dumps(forwarded).encode()
                reply = await self.upstream.call("POST", backend.url + "/prompt", body=body)
                accepted = reply.status == 200
            except UpstreamConnectError as exc:
                self.store.remove_pin(prompt_id)
                backend.mark_down(str(exc))
                log.warning("dispatch_retry", prompt_id=prompt_id, backend=backend.name)
                continue
            except UpstreamError as exc:
                self.store.remove_pin(prompt_id)
                log.warning("dispatch_failed", prompt_id=prompt_id, backend=backend.name)
                return error_answer(502, "bad_gateway", "Backend failed", str(exc))
            finally:
                backend.dispatch_finished(accepted, self.clock())
            answer = self._settle(
                prompt_id, digest, backend, reply.status, reply.body, started, reply.content_type
            )
            if answer.status == 200:
                pinned_id = _answered_id(answer.body, prompt_id)
                self.tracker.dispatched(pinned_id, backend.name, client_id, submitted_at)
            return answer

    def _choose(self, tried: set[str]) -> Backend | NoBackend:
        now = self.clock()
        left = [b for b in self.registry if b.name not in tried]
        decision = self.picker.pick(candidates_from(left, now, self.probe))
        outcome = decision.outcome if isinstance(decision, NoBackend) else "chosen"
        for listener in self.decision_listeners:
            listener(outcome)
        if isinstance(decision, NoBackend):
            return decision
        backend = self.registry.get(decision.name)
        assert backend is not None
        return backend

    def _settle(
        self,
        prompt_id: str,
        digest: str,
        backend: Backend,
        status: int,
        body: bytes,
        started: float,
        content_type: str,
    ) -> Answer:
        ms = round((self.clock() - started) * 1000, 2)
        if status != 200:
            self.store.remove_pin(prompt_id)
            log.info("rejected", prompt_id=prompt_id, backend=backend.name, status=status)
            self.tracker.events.emit(JobEvent(prompt_id, "rejected", backend.name, detail=str(status)))
            return Answer(status, body, content_type=content_type)
        pin = self.store.get_pin(prompt_id)
        client_id = pin.client_id if pin else None
        answered_id = _answered_id(body, prompt_id)
        if answered_id != prompt_id:  # an old ComfyUI ignores a supplied prompt_id
            self.store.remove_pin(prompt_id)
        self.store.put_pin(Pin(answered_id, backend.name, digest, body, client_id))
        log.info("dispatched", prompt_id=answered_id, backend=backend.name, dispatch_ms=ms)
        self.tracker.events.emit(JobEvent(answered_id, "dispatched", backend.name))
        return Answer(200, body)

    def _no_backend(self, decision: NoBackend, tried: set[str]) -> Answer:
        if tried:
            log.warning("no_backend", outcome="unreachable", tried=sorted(tried))
            return error_answer(502, "bad_gateway", "No backend could be reached")
        log.warning("no_backend", outcome=decision.outcome)
        retry = str(max(1, math.ceil(self.probe.interval)))
        return error_answer(
            503,
            "no_backend_available",
            decision.message,
            decision.outcome,
            **{"Retry-After": retry},
        )


def _answered_id(body: bytes, fallback: str) -> str:
    try:
        value = json.loads(body).get("prompt_id")
    except (ValueError, AttributeError):
        return fallback
    return value if isinstance(value, str) and value else fallback


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
