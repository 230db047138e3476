"""Work stealing: a job bound to a backend's pending slot moves to a backend
that has gone idle, so no GPU idles while a job waits behind a long one.

Late binding keeps one job pending on each busy backend so a GPU never waits
for a dispatch round trip; the price is that a short job can sit behind a
long one while another GPU frees up. When the balancer queue is empty and a
backend is idle, the earliest such pending job is taken back (ComfyUI's
`POST /queue {"delete": [id]}`, which never touches a running job) and bound
again. The owner's own answer decides: if the job is still queued or
running there, or already in its history, nothing moves, so nothing runs
twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from balancer.backends.prober import parse_queue
from balancer.backends.registry import Registry
from balancer.backends.state import Backend
from balancer.jobs.model import Job, JobState
from balancer.jobs.tracker import Tracker
from balancer.logs import get_logger
from balancer.upstream import Upstream, UpstreamError

log = get_logger("balancer.jobs")


class Stealer:
    def __init__(self, registry: Registry, tracker: Tracker, upstream: Upstream) -> None:
        self.registry = registry
        self.tracker = tracker
        self.upstream = upstream

    def candidate(self, idle: Backend, fits: Callable[[str], bool]) -> Job | None:
        """The earliest job waiting behind a running one on another backend
        that `idle` can run (`fits`, by prompt_id: it has the job's nodes
        and models)."""
        waiting = [
            job
            for job in self.tracker.jobs.values()
            if job.state is JobState.DISPATCHED
            and job.backend != idle.name
            and self.tracker.running_on(job.backend) is not None
            and fits(job.prompt_id)
        ]
        return min(waiting, key=lambda j: j.dispatched_at, default=None)

    async def take_back(self, job: Job) -> bool:
        """Remove `job` from its backend's queue; True only when the backend
        confirms it holds it nowhere (not queued, not running, not finished)."""
        owner = self.registry.get(job.backend)
        if owner is None:
            return False
        prompt_id = job.prompt_id
        try:
            body = json.dumps({"delete": [prompt_id]}).encode()
            await self.upstream.call("POST", owner.url + "/queue", body=body)
            running, pending = parse_queue(await self.upstream.get_json(owner.url + "/queue"))
            history = await self.upstream.get_json(f"{owner.url}/history/{prompt_id}")
        except UpstreamError:
            return False
        if prompt_id in running or prompt_id in pending or history:
            return False
        if self.tracker.jobs.get(prompt_id) is not job or job.state is not JobState.DISPATCHED:
            return False  # its events moved it on meanwhile
        log.info("moved", prompt_id=prompt_id, backend=owner.name)
        return True
