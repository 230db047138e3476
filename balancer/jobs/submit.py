"""POST /prompt: the prompt_id rules, idempotent retries, and the choice
between sending a prompt now and holding it in the balancer queue.

A prompt goes straight to a backend (and the backend's answer, a 400
validation error too, goes back unchanged) when nothing is waiting and some
backend has room. Otherwise it waits in the balancer queue and the client is
answered at once; the late binder dispatches it when a backend frees up.
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
from balancer.jobs.dispatch import Answer, Dispatcher, Sent, Unreachable, error_answer
from balancer.jobs.events import JobEvent
from balancer.jobs.ids import IdFactory, is_safe_prompt_id, mint_prompt_id, workflow_digest
from balancer.jobs.late import LateBinder
from balancer.logs import get_logger
from balancer.scheduling import NoBackend
from balancer.store import Pin, StoredJob

log = get_logger("balancer.jobs")


class Submitter:
    def __init__(
        self,
        dispatcher: Dispatcher,
        binder: LateBinder,
        clock: Clock,
        new_id: IdFactory = mint_prompt_id,
        wall: Clock = time.time,
    ) -> None:
        self.dispatcher = dispatcher
        self.binder = binder
        self.store = dispatcher.store
        self.clock = clock
        self.wall = wall
        self.new_id = new_id
        # prompt_id -> (digest, tenant, the answer to come) while it is accepted
        self._pending: dict[str, tuple[str, str | None, asyncio.Future[Answer]]] = {}

    async def submit(self, request: dict[str, Any], tenant: str | None = None) -> Answer:
        """`request` is the parsed POST /prompt body, already known to hold
        `prompt`; `tenant` names the API key that sent it, if keys are on."""
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
        known = await self._known_answer(prompt_id, digest, tenant)
        if known is not None:
            return known
        number = self.binder.number_for(request)
        if number is None:
            return error_answer(400, "invalid_number", "number must be a number")
        job = replace(self._job(prompt_id, digest, request, number), tenant=tenant)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[prompt_id] = (digest, tenant, future)
        try:
            answer = await self._accept(job)
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[prompt_id]
        future.set_result(answer)
        return answer

    def _job(
        self, prompt_id: str, digest: str, request: dict[str, Any], number: float
    ) -> StoredJob:
        client_id = request.get("client_id")
        forward = {k: v for k, v in request.items() if k not in ("number", "front", "client_id")}
        return StoredJob(
            prompt_id=prompt_id,
            request={**forward, "prompt_id": prompt_id},
            digest=digest,
            client_id=client_id if isinstance(client_id, str) else None,
            number=number,
            submitted_at=self.wall(),
        )

    async def _known_answer(self, prompt_id: str, digest: str, tenant: str | None) -> Answer | None:
        """The first answer for its owner's retry; a 400 for a reused id; None
        if new. Another tenant gets one answer whatever its workflow, so the
        id's workflow is no oracle and its answer (and webhook) stay the owner's."""
        pending = self._pending.get(prompt_id)
        pin = self.store.get_pin(prompt_id)
        stored = self.store.get_job(prompt_id)
        first = pending[:2] if pending else _first(stored) or _first(pin)
        if first is None:
            return None
        if first[1] != tenant:
            return _used(prompt_id, "is already in use")
        if first[0] != digest:
            return _used(prompt_id, "belongs to a different workflow")
        if pending:
            return await asyncio.shield(pending[2])
        body = stored.answer if stored and stored.answer else pin.answer if pin else b""
        return Answer(200, body)

    async def _accept(self, job: StoredJob) -> Answer:
        needs = needs_of(job.request.get("prompt"))
        unmet = self.dispatcher.fitter.refusal(needs)
        if unmet:
            log.warning("not_in_pool", prompt_id=job.prompt_id, unmet=len(unmet))
            return Answer(400, json.dumps(unmet_body(unmet)).encode())
        log.info("submitted", prompt_id=job.prompt_id)
        self.dispatcher.tracker.events.emit(JobEvent(job.prompt_id, "submitted"))
        if len(self.binder.queue) == 0:
            answer = await self._send_now(job, needs)
            if answer is not None:
                return answer
        return self._enqueue(job)

    async def _send_now(self, job: StoredJob, needs: Needs) -> Answer | None:
        """Dispatch at once if a backend has room; None means: queue it."""
        tried: set[str] = set()
        while True:
            backend = self.dispatcher.choose(needs, tried)
            if isinstance(backend, NoBackend):
                return self._no_backend(backend, tried)
            tried.add(backend.name)
            result = await self.dispatcher.send(job, backend)
            if isinstance(result, Unreachable):
                continue
            if isinstance(result, Sent):
                return result.answer
            return error_answer(502, "bad_gateway", "Backend failed", result.detail)

    def _no_backend(self, decision: NoBackend, tried: set[str]) -> Answer | None:
        if decision.outcome in ("all_busy", "capable_all_busy"):
            return None
        if tried:
            log.warning("no_backend", outcome="unreachable", tried=sorted(tried))
            return error_answer(502, "bad_gateway", "No backend could be reached")
        log.warning("no_backend", outcome=decision.outcome)
        retry = str(max(1, math.ceil(self.dispatcher.probe.interval)))
        return error_answer(
            503,
            "no_backend_available",
            decision.message,
            decision.outcome,
            **{"Retry-After": retry},
        )

    def _enqueue(self, job: StoredJob) -> Answer:
        if len(self.binder.queue) >= self.binder.max_queue:
            retry = str(self.binder.retry_after())
            log.warning("queue_full", prompt_id=job.prompt_id, waiting=len(self.binder.queue))
            return error_answer(
                429, "queue_full", "The queue is full", "try again later", **{"Retry-After": retry}
            )
        number = int(job.number) if job.number.is_integer() else job.number
        body = json.dumps({"prompt_id": job.prompt_id, "number": number, "node_errors": {}})
        self.binder.enqueue(StoredJob(**{**job.__dict__, "answer": body.encode()}))
        return Answer(200, body.encode())


def _first(record: StoredJob | Pin | None) -> tuple[str, str | None] | None:
    return (record.digest, record.tenant) if record is not None else None


def _used(prompt_id: str, why: str) -> Answer:
    return error_answer(
        400, "invalid_prompt_id", "prompt_id already used", f"prompt_id {prompt_id} {why}"
    )
