"""Admission and routing keys (issue 11, defects 6, 7, 8 and 9): a key's cap
holds under concurrency, the 503 rule does not depend on what waits, a reload
of `routing` applies at once, and an interrupt with a client_id stops only
that client's job."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from support import PoolFactory, colored

from balancer.ops.context import OPS
from balancer.ops.reconfigure import apply_settings
from tests.auth.auth_helpers import api_key, as_, keyed_pool


async def test_max_queued_holds_for_concurrent_prompts(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 2, api_key("alice", max_queued=50))
    for emulator in pool.emulators.values():
        emulator.pause()
    posts = [
        pool.client.post("/prompt", json={"prompt": colored(i)}, headers=as_("alice"))
        for i in range(100)
    ]
    statuses = [r.status for r in await asyncio.gather(*posts)]
    assert statuses.count(200) == 50 and statuses.count(429) == 50


async def test_all_draining_is_a_503_whatever_waits(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    pool.emulators["gpu0"].pause()
    for i in range(3):
        await pool.submit(colored(i))
    assert len(pool.balancer.jobs.queue) == 1, "one waits in the balancer"
    drained = await pool.client.post("/balancer/backends/gpu0/drain")
    assert drained.status == 200
    resp = await pool.client.post("/prompt", json={"prompt": colored(9)})
    assert resp.status == 503
    assert (await resp.json())["error"]["details"] == "all_draining"


async def test_a_reload_of_routing_applies_at_once(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    pool.emulators["gpu0"].pause()
    b = pool.balancer
    members = pool.client.app[OPS].members  # type: ignore[index]
    small = replace(b.settings, routing=replace(b.settings.routing, max_queue=1))
    await apply_settings(b, members, small)
    statuses = [
        (await pool.client.post("/prompt", json={"prompt": colored(i)})).status for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429], "two on the backend, one waits, then full"
    at_once = replace(small, routing=replace(small.routing, policy="round_robin"))
    await apply_settings(b, members, at_once)
    await pool.probe()
    await pool.submit(colored(8))
    assert len(b.jobs.queue) == 0, "round robin sends at once, the waiting job too"
    assert len(pool.emulators["gpu0"].queue.pending()) == 3


async def test_an_interrupt_with_a_client_id_stops_only_that_clients_job(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(3)
    for emulator in pool.emulators.values():
        emulator.pause()
    ids = {c: f"job-{c}" for c in "abc"}
    running = [pool.watch("running", i) for i in ids.values()]
    for i, (c, prompt_id) in enumerate(ids.items()):
        await pool.submit(colored(i), client_id=c, prompt_id=prompt_id)
    assert len({await pool.owner(i) for i in ids.values()}) == 3, "one per backend"
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in running)), 5.0)
    resp = await pool.client.post("/interrupt", json={"client_id": "b"})
    assert resp.status == 200
    for emulator in pool.emulators.values():
        emulator.resume()
    await pool.settle(list(ids.values()))
    ends = {c: (await pool.balancer.store.get_job(i)).state for c, i in ids.items()}  # type: ignore[union-attr]
    assert ends == {"a": "succeeded", "b": "interrupted", "c": "succeeded"}
