"""What only a shared store must promise, on a real redis-server: two
replicas never both win a job's transition, pools under other prefixes are
invisible, one replica's writes are the other's reads, and a Redis that does
not answer is an error (never an empty answer) that heals by itself."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from store_support import REDIS_HANG, redis_store

from balancer.bench.redisserver import RedisServer
from balancer.store import Pin, StoredJob
from balancer.store.model import StoreUnavailable
from balancer.store.redis import RedisStore, redis_client

StoreFactory = Callable[..., RedisStore]


def job(prompt_id: str, number: float, **kw: Any) -> StoredJob:
    return StoredJob(prompt_id, {"prompt": {"1": {}}}, "d", "c", number, **kw)


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[StoreFactory]:
    """Stores on the same Redis, each with its own client: separate replicas."""
    made: list[RedisStore] = []

    def make(prefix: str = "balancer:", max_history: int = 10_000) -> RedisStore:
        store = redis_store(redis_url, prefix=prefix, max_history=max_history)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


async def test_of_two_replicas_moving_one_job_exactly_one_wins(replicas: StoreFactory) -> None:
    first, second = replicas(), replicas()
    ids = [f"job{i}" for i in range(50)]
    for i, prompt_id in enumerate(ids):
        assert await first.create(job(prompt_id, float(i)))
    races = [
        asyncio.gather(
            first.transition(pid, ("waiting",), "dispatching", {"backend": "gpu0"}),
            second.transition(pid, ("waiting",), "cancelled", {"ended_at": 1.0}),
        )
        for pid in ids
    ]
    for pid, (sent, cancelled) in zip(ids, await asyncio.gather(*races), strict=True):
        assert (sent is None) != (cancelled is None), f"{pid}: exactly one transition applies"
        winner = sent or cancelled
        assert await first.get_job(pid) == winner == await second.get_job(pid)
    on_gpu0 = {j.prompt_id for j in await second.jobs_on("gpu0")}
    unfinished = {j.prompt_id for j in await first.unfinished_jobs()}
    assert on_gpu0 == unfinished, "the indexes follow the winner, on both replicas"
    assert await first.count_unfinished(None) == len(unfinished)


async def test_two_replicas_creating_one_id_record_it_once(replicas: StoreFactory) -> None:
    first, second = replicas(), replicas()
    made = await asyncio.gather(first.create(job("p1", 1.0)), second.create(job("p1", 2.0)))
    assert sorted(made) == [False, True]
    numbers = await asyncio.gather(*(s.next_number() for s in (first, second) * 20))
    assert sorted(numbers) == list(range(1, 41)), "one pool-wide counter, no number twice"


async def test_one_replica_reads_what_another_wrote(replicas: StoreFactory) -> None:
    first, second = replicas(max_history=2), replicas(max_history=2)
    seen = await second.histories()
    assert list(seen) == []
    for i in range(3):
        await first.put_pin(Pin(f"p{i}", "gpu0", "d", b"answer"))
        start = ["execution_start", {"prompt_id": f"p{i}", "timestamp": 10 - i}]
        await first.put_history(f"p{i}", {"status": {"messages": [start]}})
    kept = await second.histories()
    assert list(kept) == ["p1", "p0"], "time order; the oldest start went"
    assert list(seen) == [], "a snapshot taken before stays as it was"
    assert await second.get_pin("p2") is None, "its pin went with its entry"
    await second.remove_history("p1")
    assert list(await first.histories()) == ["p0"]


async def test_pools_under_other_prefixes_share_one_redis_unseen(replicas: StoreFactory) -> None:
    pool_a, pool_b = replicas("pool-a:"), replicas("pool-b:")
    await pool_a.create(job("p1", 1.0, backend="gpu0", state="queued"))
    await pool_a.put_pin(Pin("p1", "gpu0", "d", b"answer"))
    await pool_a.put_history("p1", {"outputs": {}})
    assert await pool_a.next_number() == 1 and await pool_b.next_number() == 1
    assert await pool_b.get_job("p1") is None and await pool_b.jobs_on("gpu0") == []
    assert await pool_b.get_pin("p1") is None and list(await pool_b.histories()) == []
    assert [j.prompt_id for j in await pool_a.jobs_on("gpu0")] == ["p1"]


async def test_ended_jobs_are_kept_up_to_the_history_limit(replicas: StoreFactory) -> None:
    store = replicas(max_history=3)
    for i in range(5):
        await store.create(job(f"p{i}", float(i)))
        await store.transition(f"p{i}", ("waiting",), "succeeded", {"ended_at": float(i)})
    await store.create(job("open", 9.0))
    assert [j.prompt_id for j in await store.jobs()] == ["p2", "p3", "p4", "open"]
    assert await store.get_job("p0") is None


def calls(store: RedisStore) -> dict[str, Callable[[], Awaitable[object]]]:
    """One of every store call, reads and writes."""
    return {
        "create": lambda: store.create(job("new", 5.0)),
        "transition": lambda: store.transition("p1", ("waiting",), "cancelled", {}),
        "discard": lambda: store.discard("p1"),
        "next_number": store.next_number,
        "get_job": lambda: store.get_job("p1"),
        "unfinished_jobs": store.unfinished_jobs,
        "jobs": store.jobs,
        "jobs_on": lambda: store.jobs_on("gpu0"),
        "count_unfinished": lambda: store.count_unfinished(None),
        "count_waiting": store.count_waiting,
        "get_pin": lambda: store.get_pin("p1"),
        "put_pin": lambda: store.put_pin(Pin("p2", "gpu0", "d", b"a")),
        "remove_pin": lambda: store.remove_pin("p1"),
        "pins_of": lambda: store.pins_of("gpu0"),
        "put_history": lambda: store.put_history("p2", {}),
        "get_history": lambda: store.get_history("p1"),
        "remove_history": lambda: store.remove_history("p1"),
        "histories": store.histories,
    }


async def test_an_unreachable_redis_fails_every_call_and_heals_by_itself(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    store = redis_store(server.url)
    try:
        await store.create(job("p1", 1.0))
        await store.put_pin(Pin("p1", "gpu0", "d", b"a"))
        await store.put_history("p1", {"outputs": {}})
        assert list(await store.histories()) == ["p1"]
        server.stop()
        for name, call in calls(store).items():
            with pytest.raises(StoreUnavailable):
                await call()
                pytest.fail(f"{name} answered without Redis")
        server.start()  # the same port, empty (the test server keeps nothing on disk)
        assert await store.get_job("p1") is None, "answers again, with no new store"
        assert await store.create(job("p1", 1.0))
        assert list(await store.histories()) == [], "the snapshot is read again"
    finally:
        await store.aclose()
        server.stop()


async def test_a_retried_write_that_already_applied_still_wins(redis_url: str) -> None:
    """A call whose reply was lost is sent again by the client with the same
    token: it answers the job it moved, not "someone else moved it"."""
    tokens = iter(["create", "create", "move", "move"])  # each call sent twice
    retried = redis_store(redis_url, token=lambda: next(tokens))
    other = redis_store(redis_url)
    try:
        assert await retried.create(job("p1", 1.0))
        assert await retried.create(job("p1", 1.0)), "the same create, sent again"
        assert not await other.create(job("p1", 1.0))
        moved = await retried.transition("p1", ("waiting",), "dispatching", {"backend": "gpu0"})
        again = await retried.transition("p1", ("waiting",), "dispatching", {"backend": "gpu0"})
        assert moved is not None and again == moved
        assert await other.transition("p1", ("waiting",), "dispatching", {}) is None
        assert [j.prompt_id for j in await other.jobs_on("gpu0")] == ["p1"]
    finally:
        await retried.aclose()
        await other.aclose()


@dataclass
class Silence:
    """A store's deadline in a test: its `timeout` while the test has Redis
    stopped (which never answers, so waiting it out bets on no speed), else
    REDIS_HANG seconds, which only bound a hang: a healthy Redis on a loaded
    machine is never timed out."""

    stopped: bool = False

    def __call__(self, seconds: float) -> asyncio.Timeout:
        return asyncio.timeout(seconds if self.stopped else REDIS_HANG)


async def test_a_silent_redis_is_unavailable_after_the_timeout(tmp_path: Path) -> None:
    """A Redis that accepts but never answers (stopped with SIGSTOP) fails
    each call after `timeout`, and answers again once it resumes."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    silence = Silence()
    store = redis_store(server.url, timeout=0.2, deadline=silence)
    assert server.proc is not None
    try:
        await store.create(job("p1", 1.0))
        server.proc.send_signal(signal.SIGSTOP)
        silence.stopped = True
        try:
            with pytest.raises(StoreUnavailable, match="no answer"):
                await store.get_job("p1")
            with pytest.raises(StoreUnavailable):
                await store.transition("p1", ("waiting",), "cancelled", {})
        finally:
            server.proc.send_signal(signal.SIGCONT)
            silence.stopped = False
        # The timed-out move may still apply (its bytes reached Redis): the
        # job is in one state or the other, never half-moved.
        after = await store.get_job("p1")
        assert after is not None and after.state in ("waiting", "cancelled")
        assert [j.prompt_id for j in await store.unfinished_jobs()] == (
            ["p1"] if after.state == "waiting" else []
        )
    finally:
        await store.aclose()
        server.stop()


async def test_a_job_with_a_field_from_a_newer_version_is_read_and_keeps_it(
    replicas: StoreFactory, redis_url: str
) -> None:
    """A rolling upgrade: a newer replica adds a field this version does not
    know; this one still sees the job, and its own writes leave the field."""
    store = replicas()
    await store.create(job("p1", 1.0, backend="gpu0", state="queued"))
    key, newer = "balancer:job:p1", redis_client(redis_url, 2.0)
    await newer.hset(key, "from_a_later_version", '"x"')
    seen = await store.get_job("p1")
    assert seen is not None and seen.backend == "gpu0"
    assert [j.prompt_id for j in await store.jobs_on("gpu0")] == ["p1"]
    moved = await store.transition("p1", ("queued",), "running", {"started_at": 2.0})
    assert moved is not None and moved.state == "running"
    assert await newer.hget(key, "from_a_later_version") == b'"x"'
    await newer.aclose()
