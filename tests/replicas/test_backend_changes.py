"""Backend changes made through one replica's admin API (drain, undrain, add,
remove) apply on every replica within one probe interval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis.asyncio as redis
from support import Pool

from balancer.bench.redisserver import RedisServer
from balancer.ops.context import OPS
from balancer.replicas.changes import BackendChanges

from .conftest import ReplicaFactory


async def catch_up(replica: Pool) -> None:
    """What the replica does every probe interval."""
    following = replica.client.app[OPS].following
    assert following is not None
    await following.catch_up()


def reasons(replica: Pool, name: str) -> set[str] | None:
    backend = replica.balancer.registry.get(name)
    return None if backend is None else backend.drain_reasons


async def test_a_drain_on_one_replica_drains_the_backend_on_every_replica(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1, r2 = await make_replicas(3)
    assert (await r0.client.post("/balancer/backends/gpu0/drain")).status == 200
    for replica in (r1, r2):
        await catch_up(replica)
        assert reasons(replica, "gpu0") == {"manual"}
        assert reasons(replica, "gpu1") == set()
    assert (await r2.client.post("/balancer/backends/gpu0/undrain")).status == 200
    for replica in (r0, r1):
        await catch_up(replica)
        assert reasons(replica, "gpu0") == set()


async def test_a_backend_added_or_removed_on_one_replica_is_so_on_every_replica(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2)
    url = str(r0.servers["gpu1"].make_url("")).rstrip("/")
    added = await r0.client.post("/balancer/backends", json={"name": "again", "url": url})
    assert added.status == 201, await added.text()
    await catch_up(r1)
    again = r1.balancer.registry.get("again")
    assert again is not None and again.url == url
    await r1.channels_up(["again"])
    await r1.probe()
    assert again.healthy
    again_on_r1 = await r1.client.post("/balancer/backends", json={"name": "again", "url": url})
    assert again_on_r1.status == 409

    assert (await r0.client.delete("/balancer/backends/gpu0")).status == 202
    await catch_up(r1)
    assert r1.balancer.registry.get("gpu0") is None  # idle: gone at once, as on r0
    assert r0.balancer.registry.get("gpu0") is None


async def test_a_replica_that_starts_later_gets_every_change_at_once(
    make_replicas: ReplicaFactory, redis_url: str
) -> None:
    (r0,) = await make_replicas(1)
    await r0.client.post("/balancer/backends/gpu1/drain")
    await r0.client.delete("/balancer/backends/gpu0")
    client = redis.Redis.from_url(redis_url)
    try:
        state = await BackendChanges(client, "balancer:").news()
        again = await BackendChanges(client, "balancer:").news()  # each new reader from the start
        assert again == state
    finally:
        await client.aclose()
    assert state is not None
    assert state.removed == {"gpu0"} and state.drained == {"gpu1": True}


async def test_with_redis_unreachable_an_admin_change_is_refused_and_nothing_changes(
    make_replicas: ReplicaFactory, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "own-redis")
    server.start()
    (r0,) = await make_replicas(1, redis_at=server.url)
    server.stop()
    refused = await r0.client.post("/balancer/backends/gpu0/drain")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    body: dict[str, Any] = await refused.json()
    assert body["error"]["type"] == "store_unavailable"
    assert reasons(r0, "gpu0") == set()
    assert (await r0.client.delete("/balancer/backends/gpu1")).status == 503
    assert reasons(r0, "gpu1") == set()
