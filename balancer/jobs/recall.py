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
from balancer.upstream import Upstream, UpstreamError

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
            body = json.dumps({"delete": [prompt_id]}).encode()
            await self.upstream.call("POST", owner.url + "/queue", body=body)
            running, pending = parse_queue(await self.upstream.get_json(owner.url + "/queue"))
            history = await self.upstream.get_json(f"{owner.url}/history/{prompt_id}")
        except UpstreamError:
            await self.jobs.kept(prompt_id, running=False)
            return "unknown"
        if prompt_id in running or prompt_id in pending:
            await self.jobs.kept(prompt_id, running=prompt_id in running)
            return "running" if prompt_id in running else "queued"
        if history:
            await self.jobs.kept(prompt_id, running=True)  # it ran: its end is followed as usual
            return "finished"
        log.info("recalled", prompt_id=prompt_id, backend=owner.name)
        return "gone"
