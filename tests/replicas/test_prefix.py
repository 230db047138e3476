"""Two pools on one Redis under other `store.prefix`es never meet: each
sees only its own replicas, backend room, admin changes, client events and
jobs (pub/sub channels are not per database, so the prefix is what keeps
them apart)."""

from __future__ import annotations

import redis.asyncio as redis
from support import colored, workflow

from balancer.replicas.hub import SharedHub
from balancer.store.redis import RedisStore
from tests.proxy.test_ws import connect

from .conftest import ReplicaFactory
from .test_backend_changes import catch_up, reasons


async def test_two_pools_under_other_prefixes_do_not_see_each_other(
    make_replicas: ReplicaFactory, redis_url: str
) -> None:
    (a,) = await make_replicas(1, backends=1, redis_store=RedisStore, prefix="pool-a:")
    (b,) = await make_replicas(1, backends=1, redis_store=RedisStore, prefix="pool-b:")
    for pool in (a, b):  # each pool's own gpu0, under the same name
        status = await (await pool.client.get("/balancer/status")).json()
        assert [r["name"] for r in status["replicas"]] == [status["replica"]]

    a.emulators["gpu0"].pause()
    b.emulators["gpu0"].pause()
    for i in range(2):  # each gpu0's room is two: both pools fill their own
        await a.submit(colored(i))
        await b.submit(colored(i + 10))
    assert a.emulators["gpu0"].queue.remaining() == 2
    assert b.emulators["gpu0"].queue.remaining() == 2
    assert len(b.balancer.jobs.queue) == 0, "a's slots on its gpu0 leave b's free"

    assert (await a.client.post("/balancer/backends/gpu0/drain")).status == 200
    await catch_up(b)
    assert reasons(b, "gpu0") == set()
    assert (await a.client.post("/balancer/backends/gpu0/undrain")).status == 200

    listener = await connect(b, "tab")  # the same client id on the other pool
    hub = b.balancer.hub
    assert isinstance(hub, SharedHub)
    await hub.settled()
    a.emulators["gpu0"].resume()
    talker = await connect(a, "tab")
    job = (await a.submit(workflow("progress_ws"), client_id="tab"))["prompt_id"]
    await talker.until_done(job)
    stray = [f for f in listener.frames if not (isinstance(f, dict) and f["type"] == "status")]
    assert stray == [], "nothing of pool a's job reached pool b's socket"
    assert await b.balancer.store.get_job(job) is None

    client = redis.Redis.from_url(redis_url)
    keys = {k.decode() async for k in client.scan_iter()}
    await client.aclose()
    assert keys and all(k.startswith(("pool-a:", "pool-b:")) for k in keys), sorted(keys)[:5]
