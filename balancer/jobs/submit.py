"""POST /prompt: the prompt_id rules, idempotent retries, admission, and the
choice between sending a prompt now and holding it in the balancer queue.

Admission (the key's `max_queued`, `routing.max_queue`, whether any backend
could take the prompt at all, the key's rate) is decided in one step with
recording the job (under a lock, as the store's calls may yield), so
concurrent submissions cannot all pass one check, and a refused prompt takes
no rate token and no `number`.
A prompt goes straight to a backend (and the backend's answer, a 400
validation error too, goes back with the pool's `number`) when nothing is
waiting and some backend has room. Otherwise it waits in the balancer queue
and the client is answered at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import replace
from typing import Any

from balancer.backends.state import Clock
from balancer.catalog.needs import Needs, needs_of
from balancer.catalog.refusal import unmet_body
from balancer.jobs.dispatch import Dispatcher
from balancer.jobs.ids import ID_RULE, IdFactory, is_safe_prompt_id, workflow_digest
from balancer.jobs.late import LateBinder
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.routing import Routing
from balancer.jobs.send_results import Accepted, Broken, Gone, NoRoom, Refused, Unreachable
from balancer.jobs.submission import Quota, Refusal, SubmitResult, Submitted, queued_answer
from balancer.logs import get_logger
from balancer.scheduling import NoBackend, Wait
from balancer.scheduling.filters import ROOM_OUTCOME
from balancer.store import Pin, StoredJob
from balancer.store.model import OverQuota

log = get_logger("balancer.jobs")


class Submitter:
    def __init__(
        self,
        jobs: Jobs,
        dispatcher: Dispatcher,
        binder: LateBinder,
        routing: Routing,
        new_id: IdFactory,
        wall: Clock = time.time,
    ) -> None:
        self.jobs = jobs
        self.store = jobs.store
        self.dispatcher = dispatcher
        self.binder = binder
        self.routing = routing
        self.wall = wall
        self.new_id = new_id
        self._pending: dict[str, asyncio.Future[SubmitResult]] = {}
        self._admission = asyncio.Lock()

    async def submit(self, request: dict[str, Any], quota: Quota) -> SubmitResult:
        """`request` is the parsed POST /prompt body, already known to hold `prompt`."""
        prompt_id = request.get("prompt_id")
        if prompt_id is not None and not is_safe_prompt_id(prompt_id):
            return Refusal(400, "invalid_prompt_id", "Invalid prompt_id", ID_RULE)
        digest = workflow_digest(request["prompt"])
        # An id the client chose may be a retry; one made here is new (a
        # store read less per prompt; were it taken, `_record` says so).
        known = None if prompt_id is None else await self._known(prompt_id, digest, quota.tenant)
        if known is not None:
            return known
        prompt_id = prompt_id or self.new_id()
        given = request.get("number")
        if given is not None and (isinstance(given, bool) or not isinstance(given, int | float)):
            return Refusal(400, "invalid_number", "number must be a number")
        needs = needs_of(request["prompt"])
        async with self._admission:  # check and record as one step, whatever the store awaits
            refused = await self._admit(quota, needs)
            if refused is not None:
                return refused
            job = await self._record(prompt_id, digest, request, quota)
        if isinstance(job, Refusal):
            return job
        if job is None:  # the same id was accepted meanwhile
            return await self._known(prompt_id, digest, quota.tenant) or _used(
                prompt_id, "is in use"
            )
        log.info("submitted", prompt_id=prompt_id, state=job.state)
        if job.state == "waiting":
            self.binder.wake()
            return Submitted(prompt_id, job.answer, fresh=True)
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        self._pending[prompt_id] = future
        try:
            result = await self._send_now(job, needs)
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[prompt_id]
        future.set_result(result)  # a retry waiting on it is not this fresh submission
        return replace(result, fresh=True) if isinstance(result, Submitted) else result

    async def _record(
        self, prompt_id: str, digest: str, request: dict[str, Any], quota: Quota
    ) -> StoredJob | Refusal | None:
        """The job, recorded with its number; None when its id was accepted
        meanwhile, or the key's cap refusal when the store found the key at
        its cap (another replica filled it since `_admit` looked). A prompt
        not recorded gives its rate allowance back."""
        recorded = False
        try:
            given = request.get("number")
            number = float(given) if given is not None else await self._next_number(request)
            job = self._job(prompt_id, digest, request, number, quota.tenant)
            recorded = await self.jobs.accept(job, quota.max_queued)
        except OverQuota:
            return self._over_cap(quota.max_queued)
        finally:
            if not recorded and quota.rate is not None:
                await quota.rate.give_back()
        return job if recorded else None

    async def _next_number(self, request: dict[str, Any]) -> float:
        """ComfyUI's numbering, pool-wide, taken only by an admitted prompt:
        the next counter value, negated for `front` to jump ahead of
        everything queued."""
        counter = await self.store.next_number()
        return float(-counter if request.get("front") else counter)

    async def _admit(self, quota: Quota, needs: Needs) -> SubmitResult | None:
        """Whether the pool has its nodes and models at all, the key's cap,
        then whether any backend could take it now if idle (the same pool
        state gives the same answer whatever waits), room in the balancer
        queue when it would wait, and last the key's rate (spent by `submit`
        once the job is recorded, in the same step)."""
        unmet = self.dispatcher.fitter.refusal(needs)
        if unmet:
            log.warning("not_in_pool", unmet=len(unmet))
            return Refused(400, json.dumps(unmet_body(unmet)).encode(), "application/json")
        cap = quota.max_queued
        if cap is not None and await self.store.count_unfinished(quota.tenant) >= cap:
            return self._over_cap(cap)
        impossible = self.dispatcher.could_take(needs)
        if impossible is not None:
            return self._no_backend(impossible)
        if self.binder.queue_length and self._queue_full():
            return self._full()
        wait = await quota.rate.take() if quota.rate is not None else None
        if wait is not None:
            return Refusal(429, "rate_limited", "Rate limit exceeded for this key", "",
                           max(1, math.ceil(wait)))  # fmt: skip
        return None

    def _over_cap(self, cap: int | None) -> Refusal:
        retry = self.binder.retry_after()
        return Refusal(429, "rate_limited", "Too many queued jobs for this key",
                       f"max_queued={cap}", retry)  # fmt: skip

    def _queue_full(self) -> bool:
        return self.binder.queue_length >= self.routing.settings.max_queue

    def _full(self) -> Refusal:
        log.warning("queue_full", waiting=self.binder.queue_length)
        retry = self.binder.retry_after()
        return Refusal(429, "queue_full", "The queue is full", "try again later", retry)

    def _job(
        self, prompt_id: str, digest: str, request: dict[str, Any], number: float,
        tenant: str | None,
    ) -> StoredJob:  # fmt: skip
        client_id = request.get("client_id")
        forward = {k: v for k, v in request.items() if k not in ("number", "front", "client_id")}
        waits = self.binder.queue_length > 0
        return StoredJob(
            prompt_id=prompt_id,
            request={**forward, "prompt_id": prompt_id},
            digest=digest,
            client_id=client_id if isinstance(client_id, str) else None,
            number=number,
            state="waiting" if waits else "dispatching",
            submitted_at=self.wall(),
            answer=queued_answer(prompt_id, number) if waits else b"",
            tenant=tenant,
        )

    async def _known(self, prompt_id: str, digest: str, tenant: str | None) -> SubmitResult | None:
        """The first answer for its owner's retry; a 400 for a reused id; None
        if new. Another tenant gets one answer whatever its workflow, so the
        id's workflow is no oracle and its answer (and webhook) stay the owner's."""
        job, pin = await self.store.job_and_pin(prompt_id)
        first = _first(job) or _first(pin)
        if first is None:
            return None
        if first[1] != tenant:
            return _used(prompt_id, "is already in use")
        if first[0] != digest:
            return _used(prompt_id, "belongs to a different workflow")
        pending = self._pending.get(prompt_id)
        if pending is not None:
            return await asyncio.shield(pending)
        if job is not None and not job.answer and job.state == "dispatching":
            return _in_flight(prompt_id)
        body = job.answer if job and job.answer else pin.answer if pin else b""
        if not body and job is not None:  # resumed mid-dispatch: recorded, never answered
            body = queued_answer(prompt_id, job.number)
        return Submitted(prompt_id, body)

    async def _send_now(self, job: StoredJob, needs: Needs) -> SubmitResult:
        """Dispatch at once; queue it when every backend turns out busy."""
        tried: set[str] = set()
        while True:
            backend = self.dispatcher.place(needs, 0.0, tried=frozenset(tried))
            if isinstance(backend, Wait | NoBackend):
                return await self._nowhere(job, backend, tried)
            tried.add(backend.name)
            result = await self.dispatcher.send(job, backend)
            if isinstance(result, Unreachable):
                continue
            if isinstance(result, NoRoom):  # other replicas filled it: wait here
                busy = NoBackend(ROOM_OUTCOME, "every backend is busy")
                return await self._nowhere(job, busy, tried)
            if isinstance(result, Accepted):
                return Submitted(job.prompt_id, result.body)
            if isinstance(result, Gone):
                return Submitted(job.prompt_id, queued_answer(job.prompt_id, job.number))
            if isinstance(result, Broken):
                return await self._unanswered(job, result)
            await self.jobs.refused(job.prompt_id)
            return result

    async def _unanswered(self, job: StoredJob, broken: Broken) -> SubmitResult:
        """The send broke after the request left (a timeout, a reset): its
        backend may have queued it, so it is accepted (a 502 would hide a run
        its client never sees, and a retry would run it again). It waits here
        like a job its backend lost: followed there once a probe shows it
        there, else sent again."""
        answer = queued_answer(job.prompt_id, job.number)
        max_attempts = self.routing.settings.max_attempts
        await self.jobs.lost(job.prompt_id, broken.detail, max_attempts, answer)
        self.binder.wake()
        return Submitted(job.prompt_id, answer)

    async def _nowhere(
        self, job: StoredJob, decision: Wait | NoBackend, tried: set[str]
    ) -> SubmitResult:
        """Queue it when it waits for a better backend or every one is busy."""
        if isinstance(decision, Wait) or decision.outcome in ("all_busy", "capable_all_busy"):
            if self._queue_full():
                await self.jobs.refused(job.prompt_id)
                return self._full()
            answer = queued_answer(job.prompt_id, job.number)
            await self.jobs.unbind(job.prompt_id, answer)
            self.binder.wake()
            return Submitted(job.prompt_id, answer)
        await self.jobs.refused(job.prompt_id)
        if tried:
            log.warning("no_backend", outcome="unreachable", tried=sorted(tried))
            return Refusal(502, "bad_gateway", "No backend could be reached")
        self.dispatcher.decided(decision.outcome)
        return self._no_backend(decision)

    def _no_backend(self, decision: NoBackend) -> Refusal:
        log.warning("no_backend", outcome=decision.outcome)
        retry = max(1, math.ceil(self.dispatcher.probe.interval))
        return Refusal(503, "no_backend_available", decision.message, decision.outcome, retry)


def _first(record: StoredJob | Pin | None) -> tuple[str, str | None] | None:
    return (record.digest, record.tenant) if record is not None else None


def _used(prompt_id: str, why: str) -> Refusal:
    details = f"prompt_id {prompt_id} {why}"
    return Refusal(400, "invalid_prompt_id", "prompt_id already used", details)


def _in_flight(prompt_id: str) -> Refusal:
    """A retry of a prompt whose first POST another replica (alive, or dead
    and not adopted yet) is sending to a backend: its answer (accepted, or
    the backend's refusal) is not known yet, so the retry is asked to come
    again rather than told something that may turn out false."""
    details = f"prompt_id {prompt_id} is being sent to a backend"
    return Refusal(503, "prompt_in_flight", "Prompt not answered yet", details, 1)
