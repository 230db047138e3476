"""Taking a job back from the backend that holds it: ComfyUI's
`POST /queue {"delete": [id]}` (it never touches a running job), then the
backend's own answer decides (still running or queued there, or in its
history: it stays; none of these: it is gone).

While the backend is asked, the job is `recalling`, so a probe that misses it
meanwhile does not send it again.
"""

from __future__ import annotations

import json
from typing import Literal

from balancer.backends.prober import parse_queue
from balancer.backends.registry import Registry
from balancer.jobs.lifecycle import Jobs
from balancer.logs import get_logger
from balancer.store import StoredJob
from balancer.upstream import Upstream, UpstreamError, is_death

log = get_logger("balancer.jobs")

Outcome = Literal["gone", "running", "queued", "finished", "unknown"]


class Recall:
    def __init__(self, registry: Registry, jobs: Jobs, upstream: Upstream) -> None:
        self.registry = registry
        self.jobs = jobs
        self.upstream = upstream

    async def begin(self, job: StoredJob) -> bool:
        """Mark a queued job as being recalled; False if it is not queued."""
        return await self.jobs.recalling(job.prompt_id) is not None

    async def recall(self, job: StoredJob) -> Outcome:
        if not await self.begin(job):
            return "unknown"
        return await self.confirm(job)

    async def confirm(self, job: StoredJob) -> Outcome:
        """Ask the backend to drop a job in `recalling`, and read where it is.
        On "gone" the caller ends or requeues it; otherwise it is kept."""
        owner = self.registry.get(job.backend or "")
        prompt_id = job.prompt_id
        if owner is None:
            await self.jobs.kept(prompt_id, running=False)
            return "unknown"
        try:
            outcome = await self._drop(owner.url, prompt_id)
        except UpstreamError:
            outcome = "unknown"
        if outcome == "gone":
            log.info("recalled", prompt_id=prompt_id, backend=owner.name)
        else:  # a finished run's end is followed as usual
            await self.jobs.kept(prompt_id, running=outcome in ("running", "finished"))
        return outcome

    async def drop_copy(self, backend: str, prompt_id: str) -> Outcome:
        """Ask `backend`, which the job was taken from (failover), to drop
        the run it may still hold; no job state changes. A dead backend
        (refused or reset: its process and queue are gone) holds nothing; a
        silent one is "unknown"."""
        owner = self.registry.get(backend)
        if owner is None:  # out of the pool: nothing of it is followed any more
            return "gone"
        try:
            outcome = await self._drop(owner.url, prompt_id)
        except UpstreamError as exc:
            return "gone" if is_death(exc) else "unknown"
        if outcome == "gone":
            log.info("recalled", prompt_id=prompt_id, backend=backend, copy=True)
        return outcome

    async def _drop(self, url: str, prompt_id: str) -> Outcome:
        """ComfyUI's queue delete, then where the backend shows the job."""
        body = json.dumps({"delete": [prompt_id]}).encode()
        await self.upstream.call("POST", url + "/queue", body=body)
        running, pending = parse_queue(await self.upstream.get_json(url + "/queue"))
        if prompt_id in running or prompt_id in pending:
            return "running" if prompt_id in running else "queued"
        history = await self.upstream.get_json(f"{url}/history/{prompt_id}")
        return "finished" if history else "gone"
