"""The webhook outbox keeps the same promises in every store (memory,
SQLite, Redis on a real redis-server): a webhook is owed from the very move
that ends its job, one sender holds it at a time, and SQLite and Redis keep
it across a reopen."""

from __future__ import annotations

import pytest
from store_support import Reopen

from balancer.store import StoredJob
from balancer.store.outbox import Owed

EVERY_KIND = pytest.mark.parametrize("reopen_store", ["memory", "sqlite", "redis"], indirect=True)
DURABLE = pytest.mark.parametrize("reopen_store", ["sqlite", "redis"], indirect=True)


def job(prompt_id: str, state: str = "running") -> StoredJob:
    return StoredJob(prompt_id, {"prompt": {}}, "d", "c", 1.0, state=state, backend="gpu0")  # type: ignore[arg-type]


def owed(prompt_id: str, holder: str = "r0", until: float = 100.0) -> Owed:
    body = b'{"prompt_id": "%s", "status": "completed"}' % prompt_id.encode()
    return Owed(f"{prompt_id}:completed", prompt_id, "http://127.0.0.1:9/hook", body, holder, until)


@EVERY_KIND
async def test_the_move_that_ends_a_job_writes_its_webhook_and_only_if_it_applies(
    reopen_store: Reopen,
) -> None:
    store = await reopen_store()
    assert await store.create(job("p1"))
    refused = await store.transition("p1", ("queued",), "succeeded", {}, owed("p1"))
    assert refused is None
    assert await store.claim_owed("r1", 1000.0, 2000.0) == [], "a move not made owes nothing"
    moved = await store.transition("p1", ("running",), "succeeded", {"ended_at": 5.0}, owed("p1"))
    assert moved is not None and moved.state == "succeeded"
    assert await store.claim_owed("r1", 99.0, 200.0) == [], "held by r0 until 100"
    (taken,) = await store.claim_owed("r1", 100.0, 200.0)
    assert taken == owed("p1", "r1", 200.0), "its hold lapsed: r1 holds it now"
    assert not await store.hold_owed("p1:completed", "r0", 300.0), "r0 lost it"
    assert await store.hold_owed("p1:completed", "r1", 300.0)
    assert await store.claim_owed("r0", 299.0, 400.0) == []
    await store.settle_owed("p1:completed")
    assert await store.claim_owed("r0", 10_000.0, 20_000.0) == [], "settled: owed no more"
    assert not await store.hold_owed("p1:completed", "r1", 300.0)


@EVERY_KIND
async def test_a_start_takes_what_its_own_name_holds(reopen_store: Reopen) -> None:
    store = await reopen_store()
    for pid, holder in (("p1", "r0"), ("p2", "r1")):
        assert await store.create(job(pid))
        assert await store.transition(pid, ("running",), "failed", {}, owed(pid, holder))
    (mine,) = await store.claim_owed("r0", 50.0, 150.0, mine=True)
    assert mine.prompt_id == "p1" and (mine.holder, mine.until) == ("r0", 150.0)


@DURABLE
async def test_an_owed_webhook_outlives_a_reopen(reopen_store: Reopen) -> None:
    store = await reopen_store()
    assert await store.create(job("p1"))
    assert await store.transition("p1", ("running",), "succeeded", {}, owed("p1"))
    again = await reopen_store()
    assert await again.claim_owed("balancer", 1.0, 2.0, mine=True) == []
    assert await again.claim_owed("r0", 1.0, 2.0, mine=True) == [owed("p1", "r0", 2.0)]
