"""Work stealing looks for a job to move only where one can be: on a backend
that holds two prompts or more, and (among replicas, each moving only the
jobs it follows) that holds a job this balancer follows. Every other
backend's jobs stay unread: with a shared store each list is a Redis script
returning every job there, and the late binder asks on each wake-up."""

from __future__ import annotations

from collections import Counter
from typing import Any

from balancer.backends.registry import Registry
from balancer.config.backend_settings import BackendSettings
from balancer.jobs.steal import Stealer
from balancer.store import StoredJob
from balancer.store.memory import MemoryStore


class ListingStore(MemoryStore):
    """The memory store, counting which backends' job lists were read."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: Counter[str] = Counter()

    async def jobs_on(self, backend: str) -> list[StoredJob]:
        self.listed[backend] += 1
        return await super().jobs_on(backend)


async def held(store: MemoryStore, backend: str, *jobs: tuple[str, str]) -> None:
    for number, (prompt_id, state) in enumerate(jobs):
        job = StoredJob(prompt_id, {}, "d", None, number, state=state, backend=backend)  # type: ignore[arg-type]
        assert await store.create(job)


async def test_only_backends_holding_a_followed_job_behind_another_are_read() -> None:
    names = ["mine", "others", "one", "idle"]
    registry = Registry(tuple(BackendSettings(name=n, url=f"http://{n}:1") for n in names))
    counts = {"mine": 2, "others": 2, "one": 1, "idle": 0}
    for backend in registry:
        backend.record_push(counts[backend.name], 1.0)
    store = ListingStore()
    await held(store, "mine", ("m-run", "running"), ("m-wait", "queued"))
    await held(store, "others", ("o-run", "running"), ("o-wait", "queued"))
    await held(store, "one", ("single", "running"))
    followed = {"m-wait", "single"}
    where = {"m-wait": "mine", "single": "one"}
    recall: Any = None  # candidate() asks no backend
    stealer = Stealer(registry, store, recall, followed.__contains__, lambda b: b in where.values())
    idle = next(b for b in registry if b.name == "idle")
    assert stealer.could_steal()
    job = await stealer.candidate(idle, lambda job: True)
    assert job is not None and job.prompt_id == "m-wait"
    assert store.listed == Counter({"mine": 1}), "the others' backend and one holding one: unread"
