"""Removing jobs: `POST /queue {"delete"}`, `{"clear"}` and
`POST /api/jobs/{id}/cancel`.

A removal is answered only once its outcome is known, and a removed job never
starts afterwards: a waiting job ends `cancelled` at once; one being sent is
removed once the send has an outcome; one queued on a backend is recalled
(see recall.py) and ends `cancelled` only when its backend confirms it holds
it nowhere. A running job is not removed by a queue delete (ComfyUI never
deletes a running job); a cancel interrupts it.

A job taken from a backend by failover may still have its first run there.
A removal asks that backend to drop it first. Only when every such backend
confirmed it holds no run (or is dead) is the job removed as above. A run
that finished there is the job's end; one still going there is followed
there again (so a delete leaves it running and a cancel interrupts it); a
backend that does not answer leaves the job as it is: the answer never
claims `cancelled` for a job that may still run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from balancer.backends.registry import Registry
from balancer.jobs.dispatch import Dispatcher
from balancer.jobs.follow import Follower
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.recall import Recall
from balancer.store import StoredJob
from balancer.upstream import Upstream, UpstreamError

Visible = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class Removal:
    """What a removal did: ended `cancelled`, or left running."""

    cancelled: tuple[str, ...]
    running: tuple[str, ...]


class Canceller:
    def __init__(
        self,
        registry: Registry,
        jobs: Jobs,
        dispatcher: Dispatcher,
        recall: Recall,
        follower: Follower,
        upstream: Upstream,
    ) -> None:
        self.registry = registry
        self.jobs = jobs
        self.store = jobs.store
        self.dispatcher = dispatcher
        self.recall = recall
        self.follower = follower
        self.upstream = upstream

    async def remove(self, prompt_ids: Iterable[str]) -> Removal:
        """`POST /queue {"delete": ids}`: end each one that has not started."""
        asked = list(dict.fromkeys(prompt_ids))
        ids = [i for i in asked if await self._no_copy_left(i)]
        for prompt_id in ids:
            await self.jobs.cancel_waiting(prompt_id)
        await asyncio.gather(*(self.dispatcher.settled(i) for i in ids))
        for prompt_id in ids:
            await self.jobs.cancel_waiting(prompt_id)  # sent nowhere after all
        held = [j for j in await self._jobs(ids) if j.state == "queued"]
        begun = [j for j in held if await self.recall.begin(j)]
        await asyncio.gather(*(self._confirm(j) for j in begun))
        return await self._outcome(asked)

    async def clear(self, visible: Visible | None) -> Removal:
        """`POST /queue {"clear": true}`: every job not started (the caller's
        own with `visible`); backends are told to clear too, for prompts that
        did not come through the balancer."""
        jobs = [
            j
            for j in await self.store.unfinished_jobs()
            if visible is None or await visible(j.prompt_id)
        ]
        removal = await self.remove(j.prompt_id for j in jobs)
        if visible is None:
            body = json.dumps({"clear": True}).encode()
            await asyncio.gather(
                *(self._post(b.url + "/queue", body) for b in self.registry.healthy())
            )
        return removal

    async def cancel(self, prompt_id: str) -> bool:
        """`POST /api/jobs/{id}/cancel`: removed if not started, else its
        run is interrupted. False for a finished or unknown job."""
        job = await self.store.get_job(prompt_id)
        if job is None or job.finished:
            return False
        removal = await self.remove([prompt_id])
        if prompt_id in removal.cancelled:
            return True
        job = await self.store.get_job(prompt_id)
        if job is None or job.finished:
            return False
        owner = self.registry.get(job.backend or "")
        if owner is None:
            return False
        body = json.dumps({"prompt_id": prompt_id}).encode()
        return await self._post(owner.url + "/interrupt", body)

    async def _no_copy_left(self, prompt_id: str) -> bool:
        """Ask each backend the job was taken from to drop the run it may
        still hold. A run that finished there is the job's end (the first
        end stands); one still going there is followed there again. False
        while a backend may still hold a run it did not give up."""
        job = await self.store.get_job(prompt_id)
        if job is None or job.finished:
            return True
        safe = True
        for backend in self.follower.copies(job):
            outcome = await self.recall.drop_copy(backend, prompt_id)
            if outcome == "gone":
                self.follower.copy_gone(backend, prompt_id)
            elif outcome == "finished":
                await self.follower.ends.ended(backend, prompt_id, replay=True)
            elif outcome != "running" or not await self._follow_first_run(prompt_id, backend):
                safe = False
        return safe

    async def _follow_first_run(self, prompt_id: str, backend: str) -> bool:
        """The job's first run still goes on `backend`: its later copy (if
        one was sent) is taken back and the job is followed there again, so
        it runs once and a removal treats it as running."""
        job = await self.store.get_job(prompt_id)
        owner = self.registry.get(backend)
        if job is not None and job.state == "queued":
            if await self.recall.recall(job) != "gone":
                return False  # its second run stays too: both are followed
            job = await self.jobs.taken_back(prompt_id)
        if job is None or job.state != "waiting" or owner is None:
            return False
        return await self.dispatcher.follow_again(job, owner)

    async def _confirm(self, job: StoredJob) -> None:
        outcome = await self.recall.confirm(job)
        if outcome == "gone":
            await self.jobs.cancelled(job.prompt_id)
        elif outcome == "finished" and job.backend is not None:
            await self.follower.ends.ended(job.backend, job.prompt_id, replay=True)

    async def _jobs(self, ids: list[str]) -> list[StoredJob]:
        found = [await self.store.get_job(i) for i in ids]
        return [j for j in found if j is not None]

    async def _outcome(self, ids: list[str]) -> Removal:
        jobs = await self._jobs(ids)
        return Removal(
            tuple(j.prompt_id for j in jobs if j.state == "cancelled"),
            tuple(j.prompt_id for j in jobs if j.state == "running"),
        )

    async def _post(self, url: str, body: bytes) -> bool:
        try:
            reply = await self.upstream.call("POST", url, body=body)
        except UpstreamError:
            return False
        return reply.status == 200
