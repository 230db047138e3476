"""The pool-wide queue count is the same on every replica: each replica's
sockets, `GET /prompt` and `/balancer/status` count the jobs waiting on
every replica (from the shared store), not only its own."""

from __future__ import annotations

from typing import Any

import pytest
from support import Pool, colored

from balancer.jobs.events import JobEvents
from balancer.jobs.waiting import SharedWaiting
from balancer.store.model import StoreUnavailable
from balancer.store.redis import RedisStore, redis_client
from tests.proxy.test_ws import Socket, connect

from .conftest import ReplicaFactory


async def told(sock: Socket, count: int) -> None:
    """Read the socket until a status frame says `count` (fails on timeout)."""
    while True:
        frame = await sock.next(timeout=15.0)
        status = frame["type"] == "status" if isinstance(frame, dict) else False
        if status and frame["data"]["status"]["exec_info"]["queue_remaining"] == count:
            return


async def counts(pool: Pool) -> tuple[Any, Any]:
    prompt = await (await pool.client.get("/prompt")).json()
    status = await (await pool.client.get("/balancer/status")).json()
    return prompt["exec_info"]["queue_remaining"], status["pool"]["waiting"]


async def test_every_replica_tells_the_same_pool_wide_count(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore)
    r0.emulators["gpu0"].pause()
    here, there = await connect(r0), await connect(r1)
    for i in range(5):  # two fill the backend's room, three wait on r0
        await r0.submit(colored(i))
    assert len(r0.balancer.jobs.queue) == 3 and len(r1.balancer.jobs.queue) == 0
    await told(here, 5)
    await told(there, 5)
    assert await counts(r0) == await counts(r1) == (5, 3)

    await r1.submit(colored(9))  # no room: it waits on r1
    assert len(r1.balancer.jobs.queue) == 1
    await told(here, 6)
    await told(there, 6)
    assert await counts(r0) == await counts(r1) == (6, 4)


async def test_an_unread_count_is_not_an_empty_queue(unused_tcp_port: int) -> None:
    """Redis unreachable: a read fails (GET /prompt answers 503), and the
    sockets keep a count no lower than this replica's own waiting jobs."""
    store = RedisStore(redis_client(f"redis://127.0.0.1:{unused_tcp_port}/0", 0.5), timeout=0.5)
    waiting = SharedWaiting(store, lambda: 2, JobEvents())
    with pytest.raises(StoreUnavailable):
        await waiting.read()
    assert waiting() == 2
    await store.aclose()
