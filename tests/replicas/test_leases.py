"""Replica identity and leases: who is alive, as every replica sees it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import RedisError
from support import FakeClock

from balancer.config.errors import ConfigError
from balancer.config.load import parse_settings
from balancer.config.server_settings import ListenSettings
from balancer.config.storage_settings import ReplicaSettings
from balancer.replicas.identity import Replica, identify
from balancer.replicas.leases import Leases
from balancer.replicas.outage import Outage, repeat

from .conftest import ReplicaFactory

BACKENDS = {"backends": [{"url": "http://127.0.0.1:1"}]}


@pytest.fixture
async def client(redis_url: str) -> Any:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


def test_a_replica_is_named_after_its_host_and_process_unless_configured() -> None:
    listen = ListenSettings(host="0.0.0.0", port=9000)
    assert identify(ReplicaSettings(), listen, "box", 42) == Replica("box-42", "http://box:9000")
    configured = ReplicaSettings(name="lb-a", advertise="http://10.0.0.5:8188")
    assert identify(configured, listen, "box", 42) == Replica("lb-a", "http://10.0.0.5:8188")


def test_the_replicas_section_is_checked() -> None:
    settings = parse_settings(
        {**BACKENDS, "replicas": {"name": "lb-a", "lease": "10s", "advertise": "http://a:1/"}}
    )
    assert settings.replicas == ReplicaSettings("lb-a", 10.0, "http://a:1")
    with pytest.raises(ConfigError) as bad:
        parse_settings({**BACKENDS, "replicas": {"name": "a b", "lease": "1s", "advertise": "x"}})
    assert len(bad.value.errors) == 3
    assert any(e.startswith("replicas.lease: must be at least 2s") for e in bad.value.errors)


async def two_leases(client: Any, clock: FakeClock) -> tuple[Leases, Leases]:
    a = Leases(client, Replica("a", "http://a:8188"), 5.0, clock, "balancer:")
    b = Leases(client, Replica("b", "http://b:8188"), 5.0, clock, "balancer:")
    await a.join()
    await b.join()
    return a, b


async def test_a_replica_that_stops_renewing_is_gone_after_its_lease(client: Any) -> None:
    clock = FakeClock()
    a, b = await two_leases(client, clock)
    clock.advance(3.0)
    await a.renew()  # b stops renewing (killed)
    clock.advance(2.5)
    members = {m.name: m for m in await a.members()}
    assert [members["a"].age(clock()), members["b"].age(clock())] == [2.5, 5.5]
    assert members["a"].alive(clock()) and not members["b"].alive(clock())
    assert members["b"].address == "http://b:8188"
    assert [m.name for m in await b.members()] == ["a", "b"]  # the same list from each


async def test_a_clean_exit_gives_the_lease_back(client: Any) -> None:
    a, b = await two_leases(client, FakeClock())
    await b.release()
    assert [m.name for m in await a.members()] == ["a"]


async def test_an_unreadable_entry_is_left_out_not_fatal(client: Any) -> None:
    clock = FakeClock()
    a = Leases(client, Replica("a", "http://a:8188"), 5.0, clock, "balancer:")
    await a.join()
    await client.hset(a.key, "junk", "not json")
    assert [m.name for m in await a.members()] == ["a"]


async def test_status_lists_every_replica_the_same_from_each(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2)
    for r in (r0, r1):
        await r.balancer.replicas.leases.renew()  # type: ignore[union-attr]
    docs = [await (await r.client.get("/balancer/status")).json() for r in (r0, r1)]
    assert [d["replica"] for d in docs] == ["r0", "r1"]
    assert docs[0]["replicas"] == docs[1]["replicas"]
    assert docs[0]["replicas"] == [
        {"name": "r0", "address": "http://r0:8188", "lease_age_s": 0.0, "alive": True},
        {"name": "r1", "address": "http://r1:8188", "lease_age_s": 0.0, "alive": True},
    ]
    r0.clock.advance(2.0)
    await r0.balancer.replicas.leases.renew()  # type: ignore[union-attr]
    doc = await (await r1.client.get("/balancer/status")).json()
    assert [row["lease_age_s"] for row in doc["replicas"]] == [0.0, 2.0]


async def test_a_replica_that_shuts_down_leaves_the_list(make_replicas: ReplicaFactory) -> None:
    r0, r1 = await make_replicas(2)
    await r1.client.close()
    doc = await (await r0.client.get("/balancer/status")).json()
    assert [row["name"] for row in doc["replicas"]] == ["r0"]


async def test_metrics_carry_the_replica_that_counted_them(make_replicas: ReplicaFactory) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    text = await (await r0.client.get("/metrics")).text()
    assert 'comfyui_balancer_backend_up{backend="gpu0",replica="r0"} 1.0' in text
    assert 'replica="r1"' not in text
    assert 'replica="r1"' in await (await r1.client.get("/metrics")).text()


async def test_alone_the_status_lists_this_balancer_and_metrics_have_no_replica_label(
    make_pool: Any,
) -> None:
    pool = await make_pool(1)
    doc = await (await pool.client.get("/balancer/status")).json()
    assert doc["replica"] == doc["replicas"][0]["name"]
    assert doc["replicas"][0]["lease_age_s"] is None
    assert "replica=" not in await (await pool.client.get("/metrics")).text()


async def test_a_loop_on_redis_goes_on_while_redis_is_away() -> None:
    outcomes: list[Exception | None] = [RedisError("down"), RedisError("down"), None]
    done: list[int] = []
    outage = Outage("probe_step")

    async def step() -> None:
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure
        done.append(1)

    async def sleep(seconds: float) -> None:
        assert seconds == 1.0
        if not outcomes:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await repeat(step, lambda: 1.0, outage, sleep)
    assert done == [1] and not outage.failing
