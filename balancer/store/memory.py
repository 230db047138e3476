"""The in-memory store: fast, and gone when the process ends."""

from __future__ import annotations

from typing import Any

from balancer.store.kept import KeptHistory
from balancer.store.model import Pin, StoredJob

# ComfyUI keeps at most this many history entries; so does the balancer.
MAX_HISTORY = 10_000


class MemoryStore:
    def __init__(self, max_history: int = MAX_HISTORY) -> None:
        self._pins: dict[str, Pin] = {}
        self._history = KeptHistory(max_history)
        self._jobs: dict[str, StoredJob] = {}

    def put_job(self, job: StoredJob) -> None:
        self._jobs[job.prompt_id] = job

    def get_job(self, prompt_id: str) -> StoredJob | None:
        return self._jobs.get(prompt_id)

    def remove_job(self, prompt_id: str) -> None:
        self._jobs.pop(prompt_id, None)

    def unfinished_jobs(self) -> list[StoredJob]:
        return sorted(self._jobs.values(), key=lambda j: j.number)

    def get_pin(self, prompt_id: str) -> Pin | None:
        return self._pins.get(prompt_id)

    def put_pin(self, pin: Pin) -> None:
        self._pins[pin.prompt_id] = pin

    def remove_pin(self, prompt_id: str) -> None:
        self._pins.pop(prompt_id, None)

    def pins_of(self, backend: str) -> list[Pin]:
        return [p for p in self._pins.values() if p.backend == backend]

    def put_history(self, prompt_id: str, entry: Any) -> None:
        for gone in self._history.put(prompt_id, entry):
            self._pins.pop(gone, None)  # pins and history expire together

    def get_history(self, prompt_id: str) -> Any | None:
        return self._history.get(prompt_id)

    def remove_history(self, prompt_id: str) -> None:
        self._history.remove(prompt_id)

    def histories(self) -> KeptHistory:
        return self._history
