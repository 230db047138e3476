"""A replica's copy of the kept history catches up with what the others
changed by reading only those entries (puts, removals, entries pushed out
past `history.max_items`), and reads everything again when its copy is too
far behind the log of changes or Redis lost its data: after each read it
holds exactly what a fresh read would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from balancer.store.redis import RedisStore, redis_client
from balancer.store.redis_kept import HISTORY_LOG

Make = Callable[[], RedisStore]
KEEP = 5


def entry(start: int) -> dict[str, Any]:
    messages = [["execution_start", {"prompt_id": "x", "timestamp": start}]]
    return {"status": {"status_str": "success", "messages": messages}, "outputs": {}}


@pytest.fixture
async def make(redis_url: str) -> AsyncIterator[Make]:
    made: list[RedisStore] = []

    def one() -> RedisStore:
        made.append(RedisStore(redis_client(redis_url, 2.0), "balancer:", KEEP))
        return made[-1]

    yield one
    for store in made:
        await store.aclose()


async def same_as_fresh(reader: RedisStore, make: Make) -> None:
    held = await reader.histories()
    fresh = await make().histories()
    assert list(held) == list(fresh)
    assert [held.raw(pid) for pid in held] == [fresh.raw(pid) for pid in fresh]


async def test_a_reader_reads_only_what_changed(make: Make) -> None:
    writer, reader = make(), make()
    for i in range(3):
        await writer.put_history(f"p{i}", entry(100 + i))
    await same_as_fresh(reader, make)
    assert reader.rows_read == 3

    await reader.histories()
    assert reader.rows_read == 0, "nothing changed: nothing read"

    await writer.put_history("early", entry(50))  # older than the rest: goes first
    await writer.put_history("p1", entry(101))  # the same id again
    await same_as_fresh(reader, make)
    assert reader.rows_read == 2

    await writer.remove_history("p0")
    for i in range(3, 7):  # past KEEP: the oldest are pushed out
        await writer.put_history(f"p{i}", entry(100 + i))
    await same_as_fresh(reader, make)
    assert list(await reader.histories()) == ["p2", "p3", "p4", "p5", "p6"]
    assert reader.rows_read <= 7, "the changed ids, not the whole history"


async def test_a_reader_too_far_behind_reads_everything(make: Make) -> None:
    writer, reader = make(), make()
    await writer.put_history("first", entry(1))
    await same_as_fresh(reader, make)
    for i in range(HISTORY_LOG + 1):  # more changes than the log holds
        await writer.put_history(f"p{i % (KEEP + 2)}", entry(10 + i))
    await same_as_fresh(reader, make)
    assert reader.rows_read == KEEP


async def test_a_redis_that_lost_its_data_is_read_again(make: Make, redis_url: str) -> None:
    writer, reader = make(), make()
    for i in range(3):
        await writer.put_history(f"p{i}", entry(i))
    await same_as_fresh(reader, make)
    client = redis.Redis.from_url(redis_url)
    await client.flushdb()  # a Redis restarted without its data
    await client.aclose()
    for i in range(4):  # as many changes as before, and more: numbers pass the reader's
        await writer.put_history(f"q{i}", entry(10 + i))
    await same_as_fresh(reader, make)
    assert list(await reader.histories()) == ["q0", "q1", "q2", "q3"]
