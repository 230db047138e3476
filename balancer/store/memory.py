"""The in-memory store: fast, and gone when the process ends."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from balancer.store.kept import MAX_HISTORY, KeptHistory, Retention
from balancer.store.model import JobStateName, OverQuota, Pin, StoredJob, Wall
from balancer.store.outbox import MemoryOutbox, Owed

__all__ = ["MAX_HISTORY", "MemoryStore"]


class MemoryStore:
    """`max_age`: kept entries whose job started longer ago than this
    (seconds, by `wall`) go, and their pins and ended job records with
    them."""

    def __init__(
        self,
        max_history: int = MAX_HISTORY,
        *,
        max_age: float | None = None,
        wall: Wall = time.time,
    ) -> None:
        self._pins: dict[str, Pin] = {}
        self._retention = Retention(max_history, max_age, wall)
        self._history = KeptHistory(max_history)
        self._jobs: dict[str, StoredJob] = {}
        # backend -> the ids of the unfinished jobs it holds; kept by the
        # writes of a job (create, transition, discard), so `jobs_on` reads
        # that backend's jobs only
        self._on: dict[str, dict[str, None]] = {}
        self._ended: dict[str, None] = {}  # ended jobs' ids, in the order they ended
        self._max_ended = max_history
        self._number = 0
        self._outbox = MemoryOutbox()

    async def create(self, job: StoredJob, max_unfinished: int | None = None) -> bool:
        if job.prompt_id in self._jobs:
            return False
        if max_unfinished is not None and self._unfinished(job.tenant) >= max_unfinished:
            raise OverQuota(job.tenant)
        self._jobs[job.prompt_id] = job
        self._index(None, job)
        return True

    async def transition(
        self,
        prompt_id: str,
        from_states: Collection[str],
        to_state: JobStateName,
        fields: Mapping[str, Any],
        owed: Owed | None = None,
    ) -> StoredJob | None:
        job = self._jobs.get(prompt_id)
        if job is None or job.state not in from_states:
            return None
        moved = replace(job, **{**fields, "state": to_state})
        self._jobs[prompt_id] = moved
        self._index(job, moved)
        if owed is not None:
            self._outbox.put(owed)
        if moved.finished and not job.finished:
            self._ended[prompt_id] = None
            while len(self._ended) > self._max_ended:
                self._drop_ended(next(iter(self._ended)))
        return moved

    def _index(self, before: StoredJob | None, after: StoredJob | None) -> None:
        """A job's write moves it in the by-backend index: out of the
        backend it was held on, onto the one it is held on now (unfinished)."""
        was = before.backend if before is not None and not before.finished else None
        now = after.backend if after is not None and not after.finished else None
        if was == now:
            return
        if before is not None and was is not None:
            held = self._on[was]
            del held[before.prompt_id]
            if not held:
                del self._on[was]
        if after is not None and now is not None:
            self._on.setdefault(now, {})[after.prompt_id] = None

    def _drop_ended(self, prompt_id: str) -> None:
        del self._ended[prompt_id]
        del self._jobs[prompt_id]

    async def discard(self, prompt_id: str) -> None:
        self._index(self._jobs.pop(prompt_id, None), None)
        self._ended.pop(prompt_id, None)

    async def next_number(self) -> int:
        self._number += 1
        return self._number

    async def get_job(self, prompt_id: str) -> StoredJob | None:
        return self._jobs.get(prompt_id)

    async def unfinished_jobs(self) -> list[StoredJob]:
        return sorted((j for j in self._jobs.values() if not j.finished), key=lambda j: j.number)

    async def jobs(self) -> list[StoredJob]:
        return sorted(self._jobs.values(), key=lambda j: j.number)

    async def jobs_on(self, backend: str) -> list[StoredJob]:
        held = (self._jobs[p] for p in self._on.get(backend, ()))
        return sorted(held, key=lambda j: j.number)

    async def count_unfinished(self, tenant: str | None) -> int:
        return self._unfinished(tenant)

    async def count_waiting(self) -> int:
        return sum(1 for j in self._jobs.values() if j.state == "waiting")

    def _unfinished(self, tenant: str | None) -> int:
        return sum(1 for j in self._jobs.values() if j.tenant == tenant and not j.finished)

    async def get_pin(self, prompt_id: str) -> Pin | None:
        return self._pins.get(prompt_id)

    async def job_and_pin(self, prompt_id: str) -> tuple[StoredJob | None, Pin | None]:
        return self._jobs.get(prompt_id), self._pins.get(prompt_id)

    async def put_pin(self, pin: Pin) -> None:
        self._pins[pin.prompt_id] = pin

    async def remove_pin(self, prompt_id: str) -> None:
        self._pins.pop(prompt_id, None)

    async def pins_of(self, backend: str) -> list[Pin]:
        return [p for p in self._pins.values() if p.backend == backend]

    async def put_history(self, prompt_id: str, entry: Any) -> None:
        self._forget(self._history.put(prompt_id, entry))
        self._expire()

    def _expire(self) -> None:
        self._forget(self._history.expire(self._retention.cutoff()))

    def _forget(self, prompt_ids: list[str]) -> None:
        """Entries pushed out or expired: their pins and ended jobs go too
        (an unfinished job whose entry went, being ended, stays)."""
        for gone in prompt_ids:
            self._pins.pop(gone, None)
            if gone in self._ended:
                self._drop_ended(gone)

    async def get_history(self, prompt_id: str) -> Any | None:
        self._expire()
        return self._history.get(prompt_id)

    async def remove_history(self, prompt_id: str) -> None:
        self._history.remove(prompt_id)

    async def histories(self) -> KeptHistory:
        self._expire()
        return self._history

    async def claim_owed(
        self, holder: str, now: float, until: float, mine: bool = False
    ) -> list[Owed]:
        return self._outbox.claim(holder, now, until, mine)

    async def hold_owed(self, key: str, holder: str, until: float) -> bool:
        return self._outbox.hold(key, holder, until)

    async def settle_owed(self, key: str) -> None:
        self._outbox.settle(key)

    async def count_owed(self) -> int:
        return len(self._outbox)
