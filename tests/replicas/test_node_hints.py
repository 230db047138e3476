"""The node hint (which node a client's running job is on, told to a socket
that opens on any replica) is written by the replica's event publisher, in
order with its frames: a job's frames never wait on that write, and the
newest value of each job lands, after the older ones, across a Redis
outage too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from store_support import REDIS_HANG
from support import colored

from balancer.bench.redisserver import RedisServer
from balancer.replicas.bus import EventBus
from balancer.replicas.nodes import SharedNodes
from balancer.store.redis import RedisStore, redis_client
from tests.proxy.test_ws import connect

from .conftest import (
    Applied,
    ReplicaFactory,
    first_node,
    held_at_start,
    next_executing,
    published,
)


async def applied(bus: EventBus) -> None:
    """Once everything `bus` queued so far is applied in Redis."""
    marker = Applied()
    bus.write(marker)
    await asyncio.wait_for(marker.done.wait(), REDIS_HANG)


class HeldRetry:
    """The wait between tries of a failed write: `failed` is set at the
    first one, and every one returns once `go` is set."""

    def __init__(self) -> None:
        self.failed, self.go = asyncio.Event(), asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.failed.set()
        await self.go.wait()


async def test_the_newest_node_of_each_job_lands_across_a_redis_outage(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    redis = redis_client(server.url, REDIS_HANG)
    mine = SharedNodes(redis, EventBus(redis, "r0", "pool:"), "pool:")
    other = redis_client(server.url, REDIS_HANG)  # another replica's
    others = SharedNodes(other, EventBus(other, "r1", "pool:"), "pool:")
    retry = HeldRetry()
    sending = asyncio.create_task(mine.bus.send_loop(retry))
    try:
        mine.set("a", "1")
        await applied(mine.bus)
        assert await others.of(["a"]) == {"a": "1"}
        server.stop()
        mine.set("a", "2")
        mine.set("b", "7")
        await asyncio.wait_for(retry.failed.wait(), REDIS_HANG)  # that batch waits for Redis
        mine.set("a", "3")
        mine.drop("b")
        assert await mine.of(["a", "b"]) == {"a": "3"}, "this replica reads what it noted"
        server.start()  # empty: nothing older is left to read
        retry.go.set()
        await applied(mine.bus)
        assert await others.of(["a", "b"]) == {"a": "3"}, "the newest, after the older ones"
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        for each in (redis, other):
            await each.aclose()
        server.stop()


class HeldWrites:
    """A Redis client whose writes (the event bus's script calls) wait
    until `gate` opens (`asked` is set at the first); everything else goes
    straight through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.asked, self.gate = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        self.asked.set()
        await self.gate.wait()
        return await self.inner.evalsha(*args, **kwargs)


async def test_a_jobs_frames_do_not_wait_on_its_node_hint(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore)
    nodes = r0.balancer.relay.nodes
    assert isinstance(nodes, SharedNodes)
    tab = await connect(r0, "tab")
    await published(r0)  # its replay (journal.py) read: its frames wait on nothing more
    held = HeldWrites(nodes.redis)  # r0's writes to Redis wait; its reads do not
    nodes.redis = nodes.bus.redis = held  # type: ignore[assignment]
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()  # until its end is watched
    prompt_id = (await r0.submit(colored(6), client_id="tab"))["prompt_id"]
    ended = r0.watch("completed", prompt_id)
    gpu0.resume()
    frames = await tab.until_done(prompt_id, 30)  # while its hints are not written
    assert "execution_success" in tab.types(frames)
    assert held.asked.is_set() and not held.gate.is_set()
    await asyncio.wait_for(ended.wait(), 30)  # its end recorded: its node is removed
    held.gate.set()
    await published(r0)
    assert await r1.balancer.relay.nodes.of([prompt_id]) == {}, "it ended: no node"


async def test_a_client_reconnecting_before_its_node_is_shared_is_told_it_live(
    make_replicas: ReplicaFactory,
) -> None:
    """The client's socket on another replica opens before the node its
    job is on reached Redis: that replica listens to the client's frames
    before it reads the node, and the node's write goes out with (before)
    the `executing` frame that tells it, so the client is told the node by
    that frame."""
    r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore)
    first, prompt_id = await held_at_start(r0, "tab")
    await published(r0)
    nodes = r0.balancer.relay.nodes
    assert isinstance(nodes, SharedNodes)
    held = HeldWrites(nodes.redis)  # r0's frames and node hints wait to go out
    nodes.bus.redis = held  # type: ignore[assignment]
    node = await first_node(r0, first)
    await first.ws.close()
    again = await connect(r1, "tab")  # r1 finds no node yet
    held.gate.set()
    assert (await next_executing(again))["data"]["node"] == node
    r0.emulators["gpu0"].resume()
    frames = await again.until_done(prompt_id, 30)
    assert "execution_success" in again.types(frames)
