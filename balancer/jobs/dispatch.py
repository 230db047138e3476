"""Sending one job to one backend: choose it, pin, place files, forward.

The pin is recorded before the prompt is forwarded, so a follow-up that races
the answer (`/history/{id}` polled at once) already reaches the owner. The
prompt goes out with the backend channel's `client_id` and the balancer's own
`number` (so the backend orders it as the pool does); the client's own id
stays in the balancer's records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Literal, TypeVar

from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock
from balancer.catalog.fit import Fitter
from balancer.catalog.needs import Needs, needs_of
from balancer.config.backend_settings import ProbeSettings
from balancer.jobs.binding import BeforeDispatch, Bound, Room
from balancer.jobs.events import JobEvent
from balancer.jobs.fair import TurnCheck
from balancer.jobs.lateruns import still_holds
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.numbers import pool_number
from balancer.jobs.routing import Routing
from balancer.jobs.send_results import (
    Accepted,
    Broken,
    Gone,
    NoRoom,
    Refused,
    SendResult,
    Unreachable,
)
from balancer.logs import get_logger
from balancer.scheduling import Candidate, Chosen, NoBackend, Picker, Wait, candidates_from
from balancer.store import Pin, StoredJob
from balancer.upstream import Upstream, UpstreamConnectError, UpstreamError

log = get_logger("balancer.jobs")

# What a pick gives when it names no backend.
Out = TypeVar("Out", bound=Wait | NoBackend)


# Phases after which a job is never sent again.
ENDED = frozenset({"completed", "failed", "interrupted", "cancelled", "rejected"})


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        routing: Routing,
        fitter: Fitter,
        jobs: Jobs,
        upstream: Upstream,
        probe: ProbeSettings,
        clock: Clock,
        before_dispatch: BeforeDispatch,
        on_decision: Callable[[str], None],
        room: Room | None,
    ) -> None:
        self.registry = registry
        self.routing = routing
        self.fitter = fitter
        self.jobs = jobs
        self.store = jobs.store
        self.upstream = upstream
        self.probe = probe
        self.clock = clock
        self.before_dispatch = before_dispatch
        # Shared with other replicas; None: this balancer alone fills its backends.
        self.room = room
        # Told each routing decision, one per prompt (`decided`), for metrics.
        self.on_decision = on_decision
        self._sending: dict[str, asyncio.Event] = {}
        # Unfinished jobs already sent somewhere: another send is a re-route.
        self._routed: set[str] = set()
        jobs.events.subscribe(self)

    @property
    def picker(self) -> Picker:
        return self.routing.picker

    def choose(self, needs: Needs, tried: set[str], rotate: bool = True) -> Backend | NoBackend:
        """The best backend not yet tried for a prompt with these needs. Only
        a look (the late binder and the work stealer look on every wake-up):
        the decision is counted when a job is sent, or refused (`decided`)."""
        left = [b for b in self.registry if b.name not in tried]
        return self._backend(self.picker.pick(self._candidates(left, needs), rotate))

    def place(
        self, needs: Needs, waited: float, rotate: bool = True, tried: frozenset[str] = frozenset()
    ) -> Backend | Wait | NoBackend:
        """Where a job that has waited `waited` seconds goes now (of the
        backends not `tried`), or Wait for a full backend that would finish
        it sooner (Picker.place)."""
        left = [b for b in self.registry if b.name not in tried]
        return self._backend(self.picker.place(self._candidates(left, needs), waited, rotate))

    def worth_moving(self, needs: Needs, owner: str, idle: Backend) -> bool:
        """Work stealing: `idle` can run a job pending at `owner` behind a
        running one, and would finish it sooner by the policy's score."""
        by_name = {c.name: c for c in self._candidates(list(self.registry), needs)}
        move, stay = by_name.get(idle.name), by_name.get(owner)
        if move is None or not move.capable:
            return False
        return stay is None or self.picker.worth_moving(stay._replace(load=1), move)

    def _backend(self, decision: Chosen | Out) -> Backend | Out:
        if not isinstance(decision, Chosen):
            return decision
        backend = self.registry.get(decision.name)
        assert backend is not None
        return backend

    def _candidates(self, backends: list[Backend], needs: Needs) -> list[Candidate]:
        fit = lambda name: self.fitter.fit(name, needs)  # noqa: E731
        return candidates_from(backends, self.clock(), self.probe, fit)

    def could_take(self, needs: Needs) -> NoBackend | None:
        """Why no backend could take a prompt with these needs even if it were
        idle (a decision, reported), or None."""
        impossible = self.picker.feasible(self._candidates(list(self.registry), needs))
        if impossible is not None:
            self.decided(impossible.outcome)
        return impossible

    def decided(self, outcome: str) -> None:
        """One prompt, one decision: `chosen` when it is first sent to a
        backend, `rerouted` each time it is sent to another one (a refused
        connection, a lost backend, work stealing), or why no backend could
        take it (a 503)."""
        self.on_decision(outcome)

    async def job_event(self, event: JobEvent) -> None:
        if event.phase in ENDED:
            self._routed.discard(event.prompt_id)

    def sending(self) -> list[str]:
        """The prompt_ids being sent to a backend now (bound, no answer yet)."""
        return list(self._sending)

    async def settled(self, prompt_id: str) -> None:
        """Wait until a send of this job in flight has its outcome recorded."""
        sending = self._sending.get(prompt_id)
        if sending is not None:
            await sending.wait()

    async def send(self, job: StoredJob, backend: Backend) -> SendResult:
        """Forward `job` (waiting or dispatching) to `backend`."""
        bound = await self.reserve(job, backend)
        assert bound != "again", "no turn was asked for"
        return await self.forward(bound) if isinstance(bound, Bound) else bound

    @property
    def shares_room(self) -> bool:
        """Slots are taken in the room shared with other replicas."""
        return self.room is not None and self.routing.slots is not None

    def known_full(self) -> frozenset[str]:
        """Backends whose shared slots other replicas were found to hold,
        none freed since: no job is bound there now."""
        return self.room.known_full() if self.room is not None else frozenset()

    async def wants_room(self, waiting: bool) -> None:
        """The late binder's pass begins, with jobs `waiting` or not (see Room)."""
        if self.room is not None and self.routing.slots is not None:
            await self.room.wants_room(waiting)

    async def passed(self) -> None:
        """The late binder's pass ended (see Room)."""
        if self.room is not None and self.routing.slots is not None:
            await self.room.passed(self.routing.slots)

    async def reserve(
        self, job: StoredJob, backend: Backend, turn: TurnCheck | None = None
    ) -> Bound | NoRoom | Gone | Literal["again"]:
        """A slot on `backend` (with `turn`, in the tenants' turn: see Room)
        and the job bound there: from now on it counts in the backend's
        load, and a send of it is in flight (`settled`)."""
        shared, capacity = self.room, self.routing.slots
        if shared is None or capacity is None:
            shared = None  # nothing to share: no other replica, or no limit
        elif (taken := await shared.take(backend.name, job.prompt_id, capacity, turn)) is not True:
            return NoRoom() if taken is False else taken
        bound = None
        try:
            bound = await self.jobs.bind(job.prompt_id, backend.name, None, backend.channel_id)
        finally:
            if shared is not None and bound is None:
                await shared.give_back(job.prompt_id)
        if bound is None:
            return Gone()
        self._sending[job.prompt_id] = asyncio.Event()
        backend.dispatch_started()
        return Bound(bound, backend, shared)

    async def forward(self, bound: Bound) -> SendResult:
        """Send a reserved job; its slot is given back unless it was accepted."""
        job, backend, accepted = bound.job, bound.backend, False
        try:
            result = await self._forward(job, backend)
            accepted = isinstance(result, Accepted)
            return result
        finally:
            self.abandon(job.prompt_id)
            if bound.shared is not None and not accepted:
                await bound.shared.give_back(job.prompt_id)

    def abandon(self, prompt_id: str) -> None:
        """The send of a reserved job is over."""
        self.jobs.send_over(prompt_id)
        done = self._sending.pop(prompt_id, None)
        if done is not None:
            done.set()

    async def put_back(self, bound: Bound) -> None:
        """A reserved job whose send never began (cut at shutdown): nothing
        reached its backend, so it waits again, and its slot is given back."""
        prompt_id = bound.job.prompt_id
        bound.backend.dispatch_finished(False, self.clock())
        self.abandon(prompt_id)
        try:
            await self.jobs.unbind(prompt_id)
        finally:
            if bound.shared is not None:
                await bound.shared.give_back(prompt_id)

    async def _forward(self, job: StoredJob, backend: Backend) -> SendResult:
        self.decided("rerouted" if job.prompt_id in self._routed else "chosen")
        self._routed.add(job.prompt_id)
        if still_holds(job, backend):
            backend.dispatch_finished(False, self.clock())  # it is there already
            return await self._adopt(job, backend)
        return await self._send(job, backend)

    async def _send(self, job: StoredJob, backend: Backend) -> SendResult:
        """The POST to `backend` (counted in its load since `reserve`)."""
        accepted = False
        try:
            pin = Pin(job.prompt_id, backend.name, job.digest, b"", job.client_id, job.tenant)
            await self.store.put_pin(pin)
            started = self.clock()
            forwarded = await self.before_dispatch(job.request, backend)
            sent_as = backend.channel_id
            forwarded = {**forwarded, "client_id": sent_as, "number": job.number}
            body = json.dumps(forwarded).encode()
            reply = await self.upstream.call("POST", backend.url + "/prompt", body=body)
            accepted = reply.status == 200
        except UpstreamConnectError as exc:
            await self.store.remove_pin(job.prompt_id)
            backend.mark_down(str(exc))
            log.warning("dispatch_unreachable", prompt_id=job.prompt_id, backend=backend.name)
            return Unreachable()
        except UpstreamError as exc:
            await self.store.remove_pin(job.prompt_id)
            log.warning("dispatch_failed", prompt_id=job.prompt_id, backend=backend.name)
            return Broken(str(exc))
        finally:
            backend.dispatch_finished(accepted, self.clock())
        if not accepted:
            await self.store.remove_pin(job.prompt_id)
            log.info("refused", prompt_id=job.prompt_id, backend=backend.name, status=reply.status)
            return Refused(reply.status, reply.body, reply.content_type)
        answer = job.answer or pool_number(reply.body, job.number)
        await self.store.put_pin(
            Pin(job.prompt_id, backend.name, job.digest, answer, job.client_id, job.tenant)
        )
        ms = round((self.clock() - started) * 1000, 2)
        log.info("sent", prompt_id=job.prompt_id, backend=backend.name, dispatch_ms=ms)
        return await self._on(job, backend, answer, sent_as)

    async def follow_again(self, job: StoredJob, backend: Backend) -> bool:
        """A waiting job whose first run still goes on `backend`, which it
        was taken from (found by a removal asking there): followed there
        again, not sent anywhere. False if it no longer waits."""
        bound = await self.jobs.bind(job.prompt_id, backend.name, from_states=("waiting",))
        if bound is None:
            return False
        await self._adopt(bound, backend)
        return True

    async def _adopt(self, job: StoredJob, backend: Backend) -> Accepted:
        """The backend it was taken from still holds it: it is followed
        there again rather than sent a second time (it would run twice)."""
        body = json.dumps({"prompt_id": job.prompt_id, "node_errors": {}}).encode()
        answer = job.answer or pool_number(body, job.number)
        await self.store.put_pin(
            Pin(job.prompt_id, backend.name, job.digest, answer, job.client_id, job.tenant)
        )
        log.info("adopted", prompt_id=job.prompt_id, backend=backend.name)
        return await self._on(job, backend, answer)

    async def _on(
        self, job: StoredJob, backend: Backend, answer: bytes, sent_as: str | None = None
    ) -> Accepted:
        await self.jobs.dispatched(job, backend.name, answer, sent_as)
        self.fitter.dispatched(job.prompt_id, backend.name, needs_of(job.request.get("prompt")))
        return Accepted(answer)
