"""The balancer queue shared fairly between API keys: one ComfyUI-ordered
`WaitingQueue` per tenant, and dispatch takes the next tenant in rotation
that has a job waiting. One tenant's flood therefore waits behind its own
jobs, not in front of everyone else's. Without keys there is one tenant
(None) and the order is exactly ComfyUI's.
"""

from __future__ import annotations

from collections.abc import Iterator

from balancer.jobs.queue import WaitingQueue
from balancer.store import StoredJob


class FairQueue:
    """The `WaitingQueue` interface, round-robin across `StoredJob.tenant`."""

    def __init__(self) -> None:
        self._queues: dict[str | None, WaitingQueue] = {}
        self._tenant_of: dict[str, str | None] = {}
        self._turn = 0  # index into the tenants, in first-seen order

    def __len__(self) -> int:
        return len(self._tenant_of)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._tenant_of

    def count(self, tenant: str | None) -> int:
        queue = self._queues.get(tenant)
        return len(queue) if queue is not None else 0

    def __iter__(self) -> Iterator[StoredJob]:
        """Waiting jobs in dispatch order (the rotation, played forward)."""
        lists = [list(q) for q in self._rotation()]
        out: list[StoredJob] = []
        for depth in range(max(map(len, lists), default=0)):
            out += [jobs[depth] for jobs in lists if depth < len(jobs)]
        return iter(out)

    def _rotation(self) -> list[WaitingQueue]:
        queues = list(self._queues.values())
        turn = self._turn % len(queues) if queues else 0
        return queues[turn:] + queues[:turn]

    def get(self, prompt_id: str) -> StoredJob | None:
        if prompt_id not in self._tenant_of:
            return None
        return self._queues[self._tenant_of[prompt_id]].get(prompt_id)

    def push(self, job: StoredJob) -> None:
        self.remove(job.prompt_id)
        self._queues.setdefault(job.tenant, WaitingQueue()).push(job)
        self._tenant_of[job.prompt_id] = job.tenant

    def _next(self) -> tuple[int, WaitingQueue] | None:
        queues = list(self._queues.values())
        for step in range(len(queues)):
            index = (self._turn + step) % len(queues)
            if len(queues[index]):
                return index, queues[index]
        return None

    def peek(self) -> StoredJob | None:
        found = self._next()
        return found[1].peek() if found else None

    def pop(self) -> StoredJob:
        found = self._next()
        if found is None:
            raise IndexError("pop from an empty queue")
        index, queue = found
        self._turn = index + 1
        job = queue.pop()
        del self._tenant_of[job.prompt_id]
        return job

    def remove(self, prompt_id: str) -> StoredJob | None:
        if prompt_id not in self._tenant_of:
            return None
        return self._queues[self._tenant_of.pop(prompt_id)].remove(prompt_id)
