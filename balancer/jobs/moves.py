"""The one move of a job that every transition makes (lifecycle.py has the
transitions, one method each): the store's atomic `transition`, then one
log line and one event (telling.py), from the job as stored.

The waiting index (`queue`) is the dispatch order of the jobs in `waiting`,
changed only by the transitions that enter and leave that state: a move into
`waiting` puts the job in it here, before its event is told (the late binder
a listener wakes finds it waiting), and a move out takes it out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from balancer.jobs.claims import Claims
from balancer.jobs.events import ClientEvents, JobEvents, Owing, Phase
from balancer.jobs.fair import FairQueue
from balancer.jobs.replayed import ToldOutputs
from balancer.jobs.states import FROM
from balancer.jobs.telling import tell
from balancer.store import Store, StoredJob
from balancer.store.model import JobStateName
from balancer.store.outbox import Owed

Clock = Callable[[], float]


class JobMoves:
    """The store, the events, the clock and the waiting index every
    transition (lifecycle.Jobs) works on, and its one move."""

    def __init__(
        self,
        store: Store,
        events: JobEvents,
        wall: Clock,
        claims: Claims | None = None,
        owing: Owing | None = None,
        told: ToldOutputs | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.wall = wall
        self.claims = claims  # None: this balancer alone follows every job
        self.owing = owing  # None: a job's end owes no webhook
        # Which outputs a client was told (the journal); None: nothing keeps
        # the frames told, so a replayed end tells none it cannot know of.
        self.told_outputs = told
        self.queue = FairQueue()  # round-robin across API keys
        # Starts its backend told of before the answer to its send was
        # recorded (the job still dispatching): prompt_id -> when. Recorded
        # once the dispatch lands (`dispatched`), dropped once the send is
        # over without that (`send_over`) or the job is followed elsewhere.
        self._early_starts: dict[str, float] = {}

    # ---- the one move, and its log line and event
    async def _move(
        self,
        prompt_id: str,
        to: JobStateName,
        phase: Phase | None,
        fields: Mapping[str, Any] | None = None,
        *,
        from_states: tuple[str, ...] | None = None,
        detail: str | None = None,
        client_events: ClientEvents = (),
        entry: Any = None,
        owed: Owed | None = None,
    ) -> StoredJob | None:
        """`owed`: the webhook the move owes (`_owed`), written with it."""
        allowed = FROM[to] if from_states is None else from_states
        if owed is None:
            job = await self.store.transition(prompt_id, allowed, to, fields or {})
        else:
            job = await self.store.transition(prompt_id, allowed, to, fields or {}, owed)
        if job is None:
            return None
        if job.state != "waiting":
            self._dequeue(prompt_id)
        else:
            self.queue.push(job)
        if job.state not in ("dispatching", "queued"):
            self._early_starts.pop(prompt_id, None)  # started, or left that run
        if job.told_at is not None:  # as stored: an end told is never told again
            client_events = ()
        if phase is not None:
            await tell(self.events, job, phase, detail, client_events, entry=entry, owed=owed)
        return job

    def _owed(
        self,
        job: StoredJob,
        to: JobStateName,
        fields: Mapping[str, Any],
        phase: Phase,
        detail: str | None,
        entry: Any,
    ) -> Owed | None:
        """The webhook `job`'s move to the end `to` owes, made from the
        job as that move will store it (`job` is read just before it, and
        the move applies only from the state it was read in)."""
        if self.owing is None:
            return None
        return self.owing.owed(replace(job, **{**fields, "state": to}), phase, detail, entry)

    def _dequeue(self, prompt_id: str) -> None:
        """Out of the waiting index; taking the head keeps the tenants' rotation."""
        head = self.queue.peek()
        if head is not None and head.prompt_id == prompt_id:
            self.queue.pop()
        else:
            self.queue.remove(prompt_id)

    def forget(self, prompt_id: str | None = None) -> None:
        """Another replica follows this job now (None: every job this one
        followed): out of the waiting index, and a start remembered for its
        dispatch is dropped (that replica records what it finds)."""
        if prompt_id is None:
            self._early_starts.clear()
        ids = [job.prompt_id for job in self.queue] if prompt_id is None else [prompt_id]
        for each in ids:
            self.queue.remove(each)
            self._early_starts.pop(each, None)

    def send_over(self, prompt_id: str) -> None:
        """This balancer's send of the job is over. A start told meanwhile
        was recorded if the dispatch landed here; if it did not (the job was
        lost, put back, cut at shutdown, or moved by another replica), no
        dispatch of this send will record it, and it is dropped."""
        self._early_starts.pop(prompt_id, None)

    def starts_awaiting_dispatch(self) -> int:
        """How many starts told before their dispatch was recorded are kept
        now (each at most until its send is over)."""
        return len(self._early_starts)
