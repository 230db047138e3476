"""The one writer of job state.

Every change of a job is one method of `Jobs`, here (a later run's end is
recorded as a duplicate by its base in runs.py): it checks the move is legal
(the store's atomic `transition` refuses any other), persists it in that one
call, logs one line and emits one event (the one move, moves.py). Nothing
else writes a job. Methods return the job as stored after the move, or None
when the move did not apply (the job had moved on), so callers never act on
a stale state. A job whose end its client was told (`told_at`, see `told`)
is told no end again by any move, and never runs again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from balancer.jobs.claims import create_claimed
from balancer.jobs.events import ClientEvents
from balancer.jobs.failure import failed_entry
from balancer.jobs.model import END_PHASES, end_state
from balancer.jobs.replayed import replayed_end
from balancer.jobs.runs import JobRuns
from balancer.jobs.states import FROM, UNFINISHED
from balancer.jobs.telling import tell
from balancer.store import StoredJob
from balancer.store.model import JobStateName


class Jobs(JobRuns):
    """Each transition of a job, one method each."""

    # ---- acceptance
    async def accept(self, job: StoredJob, max_unfinished: int | None = None) -> bool:
        """Record a new job: `waiting` (queued in the balancer) or
        `dispatching` (sent at once). False if the id is taken; OverQuota
        when its tenant already has `max_unfinished` unfinished jobs."""
        if not await create_claimed(self.store, self.claims, job, max_unfinished):
            return False
        if job.state == "waiting":
            self.queue.push(job)
            await tell(self.events, job, "queued", None)
        return True

    async def refused(self, prompt_id: str) -> None:
        """A prompt sent at once that its backend refused (a validation
        error): it was never accepted, so no record stays."""
        job = await self.store.get_job(prompt_id)
        if job is not None and job.state == "dispatching" and job.attempts == 0:
            await self.store.discard(prompt_id)
            await tell(self.events, job, "rejected", None)

    # ---- dispatch
    async def bind(
        self,
        prompt_id: str,
        backend: str,
        from_states: tuple[str, ...] | None = None,
        sent_as: str | None = None,
    ) -> StoredJob | None:
        """waiting (or, sent at once, dispatching) -> dispatching to
        `backend`, whose channel is `sent_as` (None: the one recorded stays)."""
        fields: dict[str, Any] = {"backend": backend}
        if sent_as is not None:
            fields["sent_as"] = sent_as
        return await self._move(prompt_id, "dispatching", None, fields, from_states=from_states)

    async def unbind(self, prompt_id: str, answer: bytes | None = None) -> StoredJob | None:
        """dispatching -> waiting: no backend was reached, or (sent at once)
        every backend turned out busy; `answer` is then what the client is told."""
        fields: dict[str, Any] = {"backend": None}
        if answer is not None:
            fields["answer"] = answer
        job = await self._move(prompt_id, "waiting", None, fields, from_states=("dispatching",))
        if job is not None and answer is not None:
            await tell(self.events, job, "queued", None)
        return job

    async def dispatched(
        self, bound: StoredJob, backend: str, answer: bytes, sent_as: str | None = None
    ) -> StoredJob | None:
        """dispatching -> queued on `backend`; `bound` is the job as its
        move to dispatching stored it (its attempts so far). A start its
        backend told of meanwhile is recorded now (`started`)."""
        fields = {"backend": backend, "attempts": bound.attempts + 1, "answer": answer}
        if sent_as is not None:  # the channel's client_id the send used
            fields["sent_as"] = sent_as
        prompt_id = bound.prompt_id
        queued = await self._move(
            prompt_id, "queued", "dispatched", fields, from_states=("dispatching",)
        )
        if queued is None or prompt_id not in self._early_starts:
            return queued
        return await self._start(prompt_id, ("queued",)) or queued

    async def started(self, prompt_id: str, backend: str) -> StoredJob | None:
        """queued -> running, told by `backend`, the job's own (the caller
        checked), recorded before its client is told (as an end is, `told`):
        a start not recorded was never told, and a replayed end tells it
        (`ended`). A backend tells it as soon as it queues the prompt, which
        may be before the answer to the send is recorded: the job is then
        still dispatching there, its start time is recorded on it, and it
        moves to running when the dispatch lands (`dispatched`)."""
        at = self._early_starts[prompt_id] = self.wall()
        started = await self._start(prompt_id, FROM["running"])
        if started is not None:
            return started
        job = await self.store.get_job(prompt_id)
        on_it = ("dispatching", "queued", "running")
        if job is None or job.backend != backend or job.state not in on_it:
            self._early_starts.pop(prompt_id, None)
            return None
        unrecorded = job.started_at is None and job.state != "queued"
        if unrecorded:  # mid-dispatch, or running as a recall found it
            fields = {"started_at": at}
            await self._move(prompt_id, job.state, None, fields, from_states=(job.state,))
        if job.state == "running":
            self._early_starts.pop(prompt_id, None)
            return None
        # Its dispatch landed while the store was read, or may land now (its
        # move found no start, or finds this one): the start is recorded now.
        return await self._start(prompt_id, ("queued",))

    async def _start(self, prompt_id: str, from_states: tuple[str, ...]) -> StoredJob | None:
        """The move to running of a start noted in `_early_starts`, at the
        time its backend told of it; the store's atomic transition lets one
        of `started` and `dispatched` make it."""
        at = self._early_starts.get(prompt_id)
        if at is None:  # recorded already
            return None
        fields = {"started_at": at}
        return await self._move(prompt_id, "running", "running", fields, from_states=from_states)

    # ---- the end of a run
    async def told(self, prompt_id: str, backend: str) -> StoredJob | None:
        """Its client is about to be told the end of its run on `backend`
        (the backend's end frames, relayed): marked first, in one write, so
        that nobody tells it again (another replica adopting it, a restart)
        and it never runs again. None: not to be told (it ended already, or
        moved on). Its state stays: the end is recorded once its history
        entry is read (`ended`)."""
        fields = {"told_at": self.wall()}
        state: JobStateName = "running"
        while (job := await self.store.transition(prompt_id, (state,), state, fields)) is None:
            job = await self.store.get_job(prompt_id)  # its start or dispatch not recorded yet
            if job is None or job.finished or job.backend != backend or job.told_at is not None:
                return None
            state = job.state  # and again, unless it moved on meanwhile
        return job

    async def ended(
        self, prompt_id: str, backend: str, entry: Any, replay: bool
    ) -> StoredJob | None:
        """A run ended on `backend` with this history entry. The first end
        stands, even from a backend the job was taken from (failover); a
        later one is recorded on the job as a duplicate run. `replay`: send
        the client the end events it missed (its channel events were lost),
        the outputs it was not told first, unless its end was told (`told`)."""
        job = await self.store.get_job(prompt_id)
        if job is None or not self.is_run_of(job, backend):
            return None
        if job.finished:
            return await self._duplicate(job, backend)
        to = end_state(entry)
        await self.store.put_history(prompt_id, entry)
        now = self.wall()
        began = job.started_at or self._early_starts.get(prompt_id, now)
        fields: dict[str, Any] = {"ended_at": now, "started_at": began}
        if backend != job.backend:  # the earlier run won: the current one is the extra
            lost = (*job.lost_from, job.backend) if job.backend else job.lost_from
            fields.update(backend=backend, lost_from=lost)
        # A start never recorded was never told (`started`): told first,
        # then the outputs not told (replayed.py).
        untold = job.started_at is None and prompt_id not in self._early_starts
        told = self.told_outputs
        events = await replayed_end(job, backend, entry, untold, told) if replay else ()
        owed = self._owed(job, to, fields, END_PHASES[to], None, entry)
        return await self._move(prompt_id, to, END_PHASES[to], fields, from_states=(job.state,),
                                client_events=events, entry=entry, owed=owed)  # fmt: skip

    # ---- removal and recall
    async def cancel_waiting(self, prompt_id: str) -> StoredJob | None:
        """waiting -> cancelled: removed before any backend saw it."""
        fields = {"ended_at": self.wall()}
        return await self._move(
            prompt_id, "cancelled", "cancelled", fields, from_states=("waiting",)
        )

    async def recalling(self, prompt_id: str) -> StoredJob | None:
        """queued -> recalling: its backend is asked to drop it (a removal,
        or work stealing). Until the answer nothing else decides its fate."""
        return await self._move(prompt_id, "recalling", None)

    async def cancelled(self, prompt_id: str) -> StoredJob | None:
        """recalling -> cancelled: its backend confirmed it holds it nowhere."""
        fields = {"ended_at": self.wall()}
        return await self._move(
            prompt_id, "cancelled", "cancelled", fields, from_states=("recalling",)
        )

    async def kept(self, prompt_id: str, running: bool) -> StoredJob | None:
        """recalling -> queued or running: its backend still holds it (it
        had started: ComfyUI never deletes a running job)."""
        to: JobStateName = "running" if running else "queued"
        return await self._move(prompt_id, to, None, from_states=("recalling",))

    async def taken_back(self, prompt_id: str) -> StoredJob | None:
        """recalling -> waiting: work stealing took it back from its backend,
        which confirmed it holds it nowhere. It does not count as an attempt."""
        job = await self.store.get_job(prompt_id)
        if job is None:
            return None
        fields = {"backend": None, "attempts": max(0, job.attempts - 1)}
        return await self._move(prompt_id, "waiting", None, fields, from_states=("recalling",))

    # ---- loss and failure
    async def lost(
        self, prompt_id: str, reason: str, max_attempts: int, answer: bytes | None = None
    ) -> StoredJob | None:
        """Its backend no longer has it: waiting again (to be dispatched
        again), or failed once it was lost `max_attempts` times, or at once
        if its end was told (`told`: its outputs went with that backend). A
        job being removed is simply gone. `answer`: what the client of a
        prompt sent at once is told (its send broke, so it is answered as
        waiting)."""
        job = await self.store.get_job(prompt_id)
        if job is None or job.state not in ("dispatching", "queued", "running"):
            return None  # a job being recalled: the recall decides
        if job.told_at is not None:  # its run ended and was told: never run again
            message = f"its outputs were lost with {job.backend} before they were read: {reason}"
            return await self.fail(prompt_id, "outputs_lost", message, {})
        if job.attempts >= max_attempts:
            return await self.fail(
                prompt_id, "job_lost", f"lost {job.attempts} times: {reason}", {}
            )
        lost_from = (*job.lost_from, job.backend) if job.backend else job.lost_from
        fields: dict[str, Any] = {"backend": None, "lost_from": lost_from, "started_at": None}
        if answer is not None:
            fields["answer"] = answer
        return await self._move(
            prompt_id, "waiting", "retried", fields, detail=reason, from_states=(job.state,)
        )

    async def fail(
        self, prompt_id: str, type_: str, message: str, node_errors: dict[str, Any]
    ) -> StoredJob | None:
        """End a job visibly without a backend run to show for it: a history
        entry with the error, and on its client's socket `execution_error`
        then `executing` null."""
        job = await self.store.get_job(prompt_id)
        if job is None or job.state not in UNFINISHED:
            return None
        entry, error = failed_entry(job, type_, message, node_errors, self.wall())
        await self.store.put_history(prompt_id, entry)
        events: ClientEvents = (
            ("execution_error", error),
            ("executing", {"node": None, "prompt_id": prompt_id}),
        )
        fields = {"ended_at": self.wall()}
        return await self._move(
            prompt_id,
            "failed",
            "failed",
            fields,
            from_states=(job.state,),
            detail=type_,
            client_events=events,
            entry=entry,
            owed=self._owed(job, "failed", fields, "failed", type_, entry),
        )

    # ---- start
    async def restore(self) -> list[StoredJob]:
        """After a restart: every unfinished job is resumed (returned as
        they were stored)."""
        jobs = await self.store.unfinished_jobs()
        await self.resume(jobs)
        return jobs

    async def resume(self, jobs: Iterable[StoredJob]) -> None:
        """Jobs nobody follows now (after a restart, or another replica's
        death): waiting jobs wait again here; a job caught mid-dispatch, or
        mid-recall (a removal or a steal cut short, never answered), is
        followed on its backend like a queued one (the first probe of that
        backend reconciles it)."""
        for job in jobs:
            if job.state == "waiting":
                self.queue.push(job)
            elif job.state == "dispatching" and job.backend is not None:
                await self._move(job.prompt_id, "queued", None, from_states=("dispatching",))
            elif job.state == "dispatching":
                await self.unbind(job.prompt_id)
            elif job.state == "recalling":
                await self.kept(job.prompt_id, running=False)
