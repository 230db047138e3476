"""The event relay knows the jobs this balancer sent: a run's events reach
its client without a store read each (with a shared store every read is a
round trip to Redis), and a backend the job was taken from still does not
reach the client with its late run's events."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from support import Pool, PoolFactory, colored, workflow

from balancer.config.backend_settings import ProbeSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.store import StoredJob
from balancer.store.memory import MemoryStore
from tests.proxy.test_ws import Socket, connect, is_done


class CountingStore(MemoryStore):
    """The memory store, counting reads of each job."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    async def get_job(self, prompt_id: str) -> StoredJob | None:
        self.reads[prompt_id] += 1
        return await super().get_job(prompt_id)


def sampled(steps: int) -> dict[str, Any]:
    """txt2img with `steps` sampler steps: a progress event per step."""
    wf = workflow("txt2img")
    wf["3"]["inputs"]["steps"] = steps
    return wf


async def run(pool: Pool, socket: Socket, prompt_id: str, steps: int) -> list[Any]:
    """Run one job to its end on the client's socket, and until its end is
    recorded (the client is told first); its frames. The backend holds it
    until its dispatch is recorded, so every run starts alike."""
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()
    sent = pool.watch("dispatched", prompt_id)
    completed = pool.watch("completed", prompt_id)
    await pool.submit(sampled(steps), client_id="reader", prompt_id=prompt_id)
    async with asyncio.timeout(30):
        await sent.wait()
    gpu0.resume()
    frames = await socket.until_done(prompt_id, timeout=30.0)
    async with asyncio.timeout(30):
        await completed.wait()
    return frames


async def test_a_runs_events_need_no_store_read_each(make_pool: PoolFactory) -> None:
    store = CountingStore()
    pool = await make_pool(1, store=store)
    socket = await connect(pool, "reader")
    await run(pool, socket, "short", 2)
    frames = await run(pool, socket, "long", 20)
    progress = [f for f in frames if isinstance(f, dict) and f["type"] == "progress"]
    assert len(progress) >= 20, "every step reached the client"
    assert store.reads["long"] == store.reads["short"], "18 more steps, no more reads"


async def test_a_late_run_where_the_job_was_taken_from_stays_off_the_socket(
    make_pool: PoolFactory,
) -> None:
    """gpu0 stalls past the grace with the job running; gpu1 runs it for the
    client. gpu0's first run then ends too: none of its events (its end, its
    outputs) reach the client, which sees one end."""
    routing = RoutingSettings(failover_grace=60.0)
    pool = await make_pool(2, probe=ProbeSettings(unhealthy_after=1), routing=routing)
    socket = await connect(pool, "reader")
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()
    await pool.submit(colored(1), client_id="reader", prompt_id="taken")
    assert await pool.owner("taken") == "gpu0"
    pool.hang("gpu0")
    await pool.probe()  # the first timeout starts the grace
    pool.clock.advance(61.0)
    await pool.probe()  # past it: sent to gpu1, which runs it
    await pool.settle(["taken"])
    duplicated = pool.watch("duplicated", "taken")
    pool.hang("gpu0", False)
    gpu0.resume()  # the first run goes on and ends, on gpu0's channel
    async with asyncio.timeout(30):
        await duplicated.wait()
    pool.hang("gpu1")
    await pool.probe()  # gpu1 down: the next job goes to gpu0, its events after the late run's
    await pool.submit(colored(2), client_id="reader", prompt_id="after")
    await socket.until_done("after", timeout=30.0)
    mine = [
        f for f in socket.frames if isinstance(f, dict) and f["data"].get("prompt_id") == "taken"
    ]
    types = Counter(f["type"] for f in mine)
    assert types["execution_success"] == 1 and types["executed"] == 1, types
    assert sum(is_done(f, "taken") for f in mine) == 1, "one end"
