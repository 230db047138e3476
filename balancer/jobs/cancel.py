"""Removing jobs: `POST /queue {"delete"}`, `{"clear"}` and
`POST /api/jobs/{id}/cancel`.

A removal is answered only once its outcome is known, and a removed job never
starts afterwards: a waiting job ends `cancelled` at once; one being sent is
removed once the send has an outcome; one queued on a backend is recalled
(see recall.py) and ends `cancelled` only when its backend confirms it holds
it nowhere. A running job is not removed by a queue delete (ComfyUI never
deletes a running job); a cancel interrupts it.
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
        ids = list(dict.fromkeys(prompt_ids))
        for prompt_id in ids:
            await self.jobs.cancel_waiting(prompt_id)
        await asyncio.gather(*(self.dispatcher.settled(i) for i in ids))
        for prompt_id in ids:
            await self.jobs.cancel_waiting(prompt_id)  # sent nowhere after all
        held = [j for j in await self._jobs(ids) if j.state == "queued"]
        begun = [j for j in held if await self.recall.begin(j)]
        await asyncio.gather(*(self._confirm(j) for j in begun))
        return await self._outcome(ids)

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
        owner = self.registry.get(job.backend or "") if job is not None else None
        if job is None or job.finished or owner is None:
            return False
        body = json.dumps({"prompt_id": prompt_id}).encode()
        return await self._post(owner.url + "/interrupt", body)

    async def _confirm(self, job: StoredJob) -> None:
        outcome = await self.recall.confirm(job)
        if outcome == "gone":
            await self.jobs.cancelled(job.prompt_id)
        elif outcome == "finished" and job.backend is not None:
            await self.follower.ended(job.backend, job.prompt_id, replay=True)

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
