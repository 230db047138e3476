"""Jobs waiting in the balancer, in ComfyUI's order: the lowest `number`
runs first (`front` gives a negative number), ties by submission time, then
prompt_id. The order depends only on what the store keeps of each job, so a
restarted balancer rebuilds the same order."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

from balancer.store import StoredJob


class WaitingQueue:
    def __init__(self) -> None:
        # (number, submitted_at, prompt_id, push): the push count only tells
        # a job's current entry from those left by earlier pushes.
        self._heap: list[tuple[float, float, str, int]] = []
        self._jobs: dict[str, StoredJob] = {}
        self._live: dict[str, int] = {}  # prompt_id -> the push of its current heap entry
        self._pushes = itertools.count()

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._jobs

    def __iter__(self) -> Iterator[StoredJob]:
        """Waiting jobs in dispatch order."""
        live = [e for e in sorted(self._heap) if self._is_live(e)]
        return iter([self._jobs[e[2]] for e in live])

    def _is_live(self, entry: tuple[float, float, str, int]) -> bool:
        return self._live.get(entry[2]) == entry[3]

    def get(self, prompt_id: str) -> StoredJob | None:
        return self._jobs.get(prompt_id)

    def push(self, job: StoredJob) -> None:
        push = next(self._pushes)
        self._jobs[job.prompt_id] = job
        self._live[job.prompt_id] = push
        heapq.heappush(self._heap, (job.number, job.submitted_at, job.prompt_id, push))

    def peek(self) -> StoredJob | None:
        self._drop_removed()
        return self._jobs[self._heap[0][2]] if self._heap else None

    def pop(self) -> StoredJob:
        self._drop_removed()
        prompt_id = heapq.heappop(self._heap)[2]
        del self._live[prompt_id]
        return self._jobs.pop(prompt_id)

    def remove(self, prompt_id: str) -> StoredJob | None:
        """Take a job out (lazily: its heap entry is skipped later)."""
        self._live.pop(prompt_id, None)
        return self._jobs.pop(prompt_id, None)

    def _drop_removed(self) -> None:
        while self._heap and not self._is_live(self._heap[0]):
            heapq.heappop(self._heap)
