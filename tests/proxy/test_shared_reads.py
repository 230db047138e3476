import asyncio

import pytest

from balancer.proxy.shared_reads import SharedReads


async def test_concurrent_identical_reads_share_one_fetch() -> None:
    reads = SharedReads()
    release = asyncio.Event()
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        mine = calls
        await release.wait()
        return mine

    waiting = [asyncio.create_task(reads.get("/queue", fetch)) for _ in range(5)]
    other = asyncio.create_task(reads.get("/prompt", fetch))
    await asyncio.sleep(0)  # let every task reach its await
    release.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert await other == 2
    assert await reads.get("/queue", fetch) == 3, "a later read fetches anew"


async def test_a_failed_fetch_fails_every_sharer() -> None:
    reads = SharedReads()
    release = asyncio.Event()

    async def fetch() -> int:
        await release.wait()
        raise RuntimeError("backend gone")

    tasks = [asyncio.create_task(reads.get("k", fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    for task in tasks:
        with pytest.raises(RuntimeError):
            await task
