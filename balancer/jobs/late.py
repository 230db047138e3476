"""The late binder: jobs wait in the balancer and are bound to a backend only
when one has room, to the least-loaded one (work stealing refills an idle
backend from another's pending slot)."""

from __future__ import annotations

import asyncio
import enum
import itertools
from dataclasses import dataclass
from functools import partial

from balancer.backends.state import Backend, Clock
from balancer.catalog.needs import Needs, needs_of
from balancer.catalog.refusal import unmet_body
from balancer.jobs.binding import Bound
from balancer.jobs.dispatch import Dispatcher
from balancer.jobs.events import LEFT_BACKEND, JobEvent
from balancer.jobs.failure import rejection_error
from balancer.jobs.fair import NotNow, Turn
from balancer.jobs.forwards import Forwards
from balancer.jobs.lateruns import LateRuns, still_holds
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.routing import Routing
from balancer.jobs.send_results import Broken, Gone, NoRoom, Refused, Unreachable
from balancer.jobs.steal import Stealer
from balancer.jobs.throughput import Throughput
from balancer.jobs.wakes import Wakes
from balancer.scheduling import NoBackend, Wait
from balancer.store import StoredJob
from balancer.store.guard import guarded
from balancer.tasks import stop

# Waiting jobs looked at past the head when it waits for its capable set.
LOOKAHEAD = 64


@dataclass(frozen=True)
class Found:
    """A waiting job a backend can take now (`tried`: the backends it must
    not go to), and how long it has passed up a backend with room."""

    job: StoredJob
    needs: Needs
    waited: float
    tried: frozenset[str]


class Unsure(enum.Enum):
    """No job found in this order of the rotation; another could find one."""

    UNSURE = "unsure"


UNSURE = Unsure.UNSURE


class LateBinder:
    def __init__(
        self,
        dispatcher: Dispatcher,
        jobs: Jobs,
        routing: Routing,
        stealer: Stealer,
        clock: Clock,
        late: LateRuns,
        turn: Turn | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.late = late
        self.jobs = jobs
        self.routing = routing
        self.stealer = stealer
        self.clock = clock
        self.turn = turn  # None: the tenants' turn is this balancer's own
        self.wakes = Wakes(jobs.queue, self._may_steal)
        self.throughput = Throughput(clock)
        # Backends whose shared slots other replicas hold (this pump pass).
        self._full: set[str] = set()
        # The tenants' turn was read in this pass, and nothing since moved it
        # here (a job bound) or found it moved: a slot refused is no reason
        # to read it again before the next backend is asked.
        self._followed = False
        self._pump = guarded("binding", self.pump)  # the store away: the next wake-up retries
        self.forwards = Forwards(
            guarded("binding", self._forward), guarded("binding", dispatcher.put_back)
        )
        # Shutdown began (`stop_binding`): nothing more is bound, and the
        # sends bound so far have until then (loop time).
        self._drain_until: float | None = None
        # prompt_id -> when it began to pass up a backend with room to wait
        # for a better one; the rent it pays runs from there (a wait while
        # every backend was full would have happened anyway).
        self._passing: dict[str, float] = {}
        jobs.events.subscribe(self)

    @property
    def queue_length(self) -> int:
        return len(self.jobs.queue)

    def queue_length_now(self) -> int:
        return len(self.jobs.queue)

    def wake(self) -> None:
        self.wakes.wake()  # a pass only if it could do something

    async def run(self) -> None:
        """Dispatch waiting jobs whenever something may have freed room,
        until shutdown begins (`stop_binding`)."""
        while self._drain_until is None:
            await self.wakes.due()
            await self._pump()
            await self.dispatcher.passed()  # a slot offered here and not taken goes on

    def stop_binding(self, patience: float) -> None:
        """Shutdown begins: nothing more is bound (the jobs waiting stay
        waiting, in the store), and the sends bound so far have `patience`
        seconds from now to finish (`close`)."""
        self._drain_until = asyncio.get_running_loop().time() + patience
        self.wakes.stop()

    async def close(self, running: asyncio.Task[None]) -> None:
        """After `stop_binding`, until its deadline: the binding pass under
        way ends (`running`, the task of `run`), and the sends bound finish;
        then what is left is cut (forwards.py). Without it, at once."""
        if self._drain_until is not None:
            await asyncio.wait({running}, timeout=max(0.0, self._left()))
        await stop(running)
        await self.forwards.close(self._left())

    def _left(self) -> float:
        """Seconds until `stop_binding`'s deadline (none: 0)."""
        if self._drain_until is None:
            return 0.0
        return self._drain_until - asyncio.get_running_loop().time()

    async def pump(self) -> None:
        """Bind waiting jobs while backends have room; each bound job is
        forwarded in the background (`forwards`), so binding goes on."""
        await self.dispatcher.wants_room(self.wakes.begin())
        self._full = set(self.dispatcher.known_full())
        self._followed = False
        while self._drain_until is None and (
            (found := await self._bindable()) is not None or await self.steal()
        ):
            if found is None:
                continue  # a stolen job is waiting now: look again
            job, backend = found
            result = await self._reserve(job, backend)
            if result == "wait":
                return  # the replica holding the tenant next in turn binds
            if isinstance(result, str):
                self._followed = False
                continue  # another replica served the next tenant: choose again
            if isinstance(result, NoRoom):
                self._full.add(backend.name)  # until the next wake-up
            elif isinstance(result, Gone):  # another replica moved it: not waiting here
                self.jobs.forget(job.prompt_id)
            else:
                self._followed = False  # the turn moved with it
                self.forwards.start(result)

    async def _forward(self, bound: Bound) -> None:
        """Send a bound job; one that did not reach its backend waits again."""
        job, result = bound.job, await self.dispatcher.forward(bound)
        if isinstance(result, Unreachable):
            await self.jobs.unbind(job.prompt_id)
            self.wake()  # it waits again; the backend is down now
        elif isinstance(result, Broken):
            await self.jobs.lost(job.prompt_id, result.detail, self.routing.settings.max_attempts)
        elif isinstance(result, Refused):
            error = rejection_error(result.body, result.status)
            await self.jobs.fail(job.prompt_id, *error)

    async def _reserve(self, job: StoredJob, backend: Backend) -> Bound | NoRoom | Gone | NotNow:
        """`job` bound to `backend` in its tenant's turn, shared with the other
        replicas (fair.NotNow: why not now): the turn moves with the slot
        the job takes there, in one step (Room.take)."""
        if self.turn is None:
            return await self.dispatcher.reserve(job, backend)
        move = self.turn.take(self.jobs.queue, job)
        if isinstance(move, str):
            return move
        if self.dispatcher.shares_room:
            result = await self.dispatcher.reserve(job, backend, self.turn.condition(move))
        elif not await self.turn.commit(move):
            return "again"
        else:
            result = await self.dispatcher.reserve(job, backend)
        if isinstance(result, Gone):
            await self.turn.undo(move)  # not bound here: the turn was not used
        return result

    async def _bindable(self) -> tuple[StoredJob, Backend] | None:
        """The first waiting job a backend can take now, with that backend.
        With replicas, the rotation starts after the tenant served last
        pool-wide (`turn.follow`, a Redis read), read only when a job could
        be bound: a wake-up that finds no room for any job (most of them:
        every replica wakes on every backend's `status` push) reads nothing,
        and after a slot refused (another replica took it) the next backend
        is asked in the order read. Looked for again in the order read, if
        it moved."""
        found = await self._first()
        if self.turn is not None and found is not None and not self._followed:
            self._followed = True
            served = self.jobs.queue.served
            await self.turn.follow(self.jobs.queue)
            if self.jobs.queue.served != served:
                found = await self._first()
        if not isinstance(found, Found):
            return None
        bound = self.dispatcher.place(found.needs, found.waited, tried=found.tried)
        return (found.job, bound) if isinstance(bound, Backend) else None

    async def _first(self) -> Found | Unsure | None:
        """The first waiting job, in the rotation as this replica knows it,
        that a backend can take now. Past the head only when the head waits
        for its capable set (in a mixed pool a prompt for a model two GPUs
        hold must not hold up work the others could run), or, with a warm
        lookahead, while the jobs before it wait for a full backend that
        would finish them sooner (each for at most what that saves, counted
        from when it began to pass up a backend with room: Picker.place); a
        job no backend in the pool can run any more (its model went away)
        fails visibly instead of waiting forever. None: no job can be bound
        now, whatever the order; UNSURE: none in this order, and another
        order could find one (the lookahead ran out first)."""
        window = self.routing.picker.warm_lookahead
        full, waits, now = frozenset(self._full), 0, self.clock()
        for job in list(itertools.islice(self.jobs.queue, LOOKAHEAD)):
            needs = needs_of(job.request.get("prompt"))
            waited = now - self._passing.get(job.prompt_id, now)
            avoid = self._may_hold(job)
            tried = full | avoid
            placed = self.dispatcher.place(needs, waited, rotate=False, tried=tried)
            if isinstance(placed, Wait):
                self._passing.setdefault(job.prompt_id, now)
                waits += 1
                if waits > window:
                    return UNSURE
                continue
            self._passing.pop(job.prompt_id, None)
            if not isinstance(placed, NoBackend):
                return Found(job, needs, waited, tried)
            if avoid:
                continue  # it waits for the probes of a backend that may hold it
            unmet = self.dispatcher.fitter.refusal(needs)
            if unmet:
                body = unmet_body(unmet)
                error = body["error"]
                await self.jobs.fail(
                    job.prompt_id, error["type"], error["message"], body["node_errors"]
                )
            elif not waits and not placed.outcome.startswith(("capable_", "not_capable")):
                return None  # every backend is out for every job alike
        return UNSURE if len(self.jobs.queue) > LOOKAHEAD else None

    def _may_hold(self, job: StoredJob) -> frozenset[str]:
        """Backends that may still hold a run of `job` (lateruns.py) without
        their last probe showing it: it is not sent there (a second copy on
        one GPU); one whose probe shows it is where it is followed again."""
        registry = self.dispatcher.registry
        return frozenset(
            name
            for name in self.late.backends(job.prompt_id)
            if (backend := registry.get(name)) is None or not still_holds(job, backend)
        )

    async def steal(self) -> bool:
        """Nothing waits here and a backend is idle: take back a job pending
        behind a running one elsewhere, to bind it again (see steal.py)."""
        if not self._may_steal():
            return False
        idle = self.dispatcher.choose(Needs(), self._full, rotate=False)
        if isinstance(idle, NoBackend) or idle.load() != 0:
            return False
        job = await self.stealer.candidate(idle, partial(self._fits, idle))
        if job is None or not await self.stealer.take_back(job):
            return False
        self.dispatcher.fitter.taken_back(job.prompt_id)
        return True

    def _may_steal(self) -> bool:
        return self.routing.steals and self.stealer.could_steal()

    def _fits(self, backend: Backend, job: StoredJob) -> bool:
        """`backend` can run the job and would finish it sooner than its owner."""
        needs = needs_of(job.request.get("prompt"))
        return self.dispatcher.worth_moving(needs, job.backend or "", backend)

    async def job_event(self, event: JobEvent) -> None:
        if event.phase in ("completed", "failed", "interrupted"):
            self.throughput.ended()
        if event.phase in LEFT_BACKEND:
            self.wake()
        if event.phase in ("completed", "failed", "interrupted", "cancelled"):
            self._passing.pop(event.prompt_id, None)

    def retry_after(self) -> int:
        """Seconds until the queue has room, from recent throughput."""
        return self.throughput.retry_after(len(self.jobs.queue))
