"""A start told after a recall found the job running: a removal asked
the job's backend to drop it, which had started it meanwhile (ComfyUI never
deletes a running job), and the recall's read of the backend's queue kept
it running before the relay handled the backend's `execution_start`. That
start is recorded before its client is told (lifecycle.Jobs.started), so
after a restart, the balancer ending the job from history (its frames went
to the process before) tells its client only the end: the start once."""

from __future__ import annotations

from typing import Any

import pytest
from store_support import Reopen

from balancer.jobs.events import JobEvent, JobEvents
from balancer.jobs.lifecycle import Jobs
from balancer.store import StoredJob

EVERY_KIND = pytest.mark.parametrize("reopen_store", ["memory", "sqlite", "redis"], indirect=True)
START = {"prompt_id": "p", "timestamp": 1000}
ENTRY: dict[str, Any] = {
    "prompt": [1, "p", {}, {}, []],
    "outputs": {},
    "status": {
        "status_str": "success",
        "completed": True,
        "messages": [
            ["execution_start", START],
            ["execution_cached", {"nodes": [], "prompt_id": "p", "timestamp": 1000}],
            ["execution_success", {"prompt_id": "p", "timestamp": 1500}],
        ],
    },
}


class Told:
    """The frames the balancer makes for the job's client (job events'
    `client_events`), as the relay sends them."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, dict[str, Any]]] = []

    async def job_event(self, event: JobEvent) -> None:
        self.frames.extend(event.client_events)


@EVERY_KIND
async def test_a_start_told_after_a_recall_kept_the_job_running_is_told_once(
    reopen_store: Reopen,
) -> None:
    store = await reopen_store()
    jobs = Jobs(store, JobEvents(), wall=lambda: 100.0)
    job = StoredJob("p", {}, "d", "c", 1, state="queued", backend="gpu0", attempts=1)
    assert await store.create(job)
    assert await jobs.recalling("p") is not None  # a removal asks gpu0 to drop it
    kept = await jobs.kept("p", running=True)  # gpu0 shows it running: it stays
    assert kept is not None and kept.state == "running" and kept.started_at is None
    await jobs.started("p", "gpu0")  # its execution_start, which the relay tells next
    heard: list[tuple[str, dict[str, Any]]] = [("execution_start", START)]
    stored = await store.get_job("p")
    assert stored is not None and stored.started_at == 100.0, "its start time is recorded"

    # The balancer restarts; gpu0 ends the run, whose frames nobody relays:
    # a probe misses it from gpu0's queue and ends it from history.
    store = await reopen_store()
    told = Told()
    events = JobEvents()
    events.subscribe(told)
    again = Jobs(store, events, wall=lambda: 110.0)
    await again.restore()
    ended = await again.ended("p", "gpu0", ENTRY, replay=True)
    assert ended is not None and ended.state == "succeeded"
    heard += told.frames
    assert [kind for kind, _ in heard] == ["execution_start", "execution_success", "executing"]
    assert ended.started_at == 100.0 and ended.ended_at == 110.0
