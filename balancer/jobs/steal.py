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

from collections.abc import Callable

from balancer.backends.registry import Registry
from balancer.backends.state import Backend
from balancer.jobs.recall import Recall
from balancer.store import Store, StoredJob


class Stealer:
    def __init__(
        self,
        registry: Registry,
        store: Store,
        recall: Recall,
        follows: Callable[[str], bool],
        may_wait_on: Callable[[str], bool],
    ) -> None:
        self.registry = registry
        self.store = store
        self.recall = recall
        # Among replicas each takes back only jobs it follows, so it reads
        # the jobs of only the backends where one of those may wait (it
        # has not seen it start there).
        self.follows = follows
        self.may_wait_on = may_wait_on

    def could_steal(self) -> bool:
        """Whether a backend holds two prompts or more (its newest count plus
        dispatches it has not counted yet: only there can a job wait behind
        a running one) and another holds none (one to move it to). A look at
        attributes, so the late binder's wake-ups (one per probe and per
        `status` push) skip a pass, a routing decision and reading every
        backend's jobs from the store while the pool has nothing to steal."""
        backends = list(self.registry)
        return any(b.load() == 0 for b in backends) and any(map(_holds_two, backends))

    async def candidate(self, idle: Backend, fits: Callable[[StoredJob], bool]) -> StoredJob | None:
        """The earliest job waiting behind a running one on another backend
        that `idle` can run (`fits`: it has the job's nodes and models). The
        store is read only for backends that hold two prompts or more and a
        job this balancer follows that it has not seen start."""
        waiting: list[StoredJob] = []
        for backend in self.registry:
            mine = _holds_two(backend) and self.may_wait_on(backend.name)
            if backend.name == idle.name or not mine:
                continue
            held = await self.store.jobs_on(backend.name)
            if any(j.state == "running" for j in held):
                waiting += [
                    j for j in held if j.state == "queued" and self.follows(j.prompt_id) and fits(j)
                ]
        return min(waiting, key=lambda j: j.number, default=None)

    async def take_back(self, job: StoredJob) -> bool:
        """Move `job` back to the balancer queue; True only when its backend
        confirmed it holds it nowhere (not queued, not running, not finished)."""
        outcome = await self.recall.recall(job)
        if outcome != "gone":
            return False
        return await self.recall.jobs.taken_back(job.prompt_id) is not None


def _holds_two(backend: Backend) -> bool:
    """Its newest count plus the dispatches it has not counted yet is two or
    more: only there can a job wait behind a running one."""
    load = backend.load()
    return load is not None and load >= 2
