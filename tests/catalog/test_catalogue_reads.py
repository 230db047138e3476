"""Catalogue reads at start-up: a pool of many backends is read a few
backends at a time, in the background, so the reads (a dozen requests each,
`/object_info` the largest answer a backend gives) never starve or hold up
the probes that run beside them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from support import PoolFactory

from balancer.catalog.book import READS_AT_ONCE

BACKENDS = READS_AT_ONCE + 4


class HeldReads:
    """Holds every `/object_info` request until released; counts those in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.release = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/object_info":
            return await handler(request)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.release.wait()
            return await handler(request)
        finally:
            self.in_flight -= 1


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(30.0):  # bounds a hang only
        while not check():
            await asyncio.sleep(0.001)


async def test_start_up_reads_a_few_catalogues_at_a_time(make_pool: PoolFactory) -> None:
    held = HeldReads()
    pool = await make_pool(BACKENDS, probe_first=False, middlewares=(held.middleware,))
    reader = pool.balancer.catalogue_reader
    first = asyncio.ensure_future(pool.probe())  # every backend's first probe: all due
    await until(lambda: held.in_flight >= READS_AT_ONCE and len(reader._reading) == BACKENDS)
    for _ in range(20):  # room for any read beyond the limit to reach its backend
        await asyncio.sleep(0)
    assert held.in_flight == READS_AT_ONCE  # the others wait their turn
    held.release.set()
    await first
    assert held.peak == READS_AT_ONCE
    catalogues = pool.balancer.catalogues
    assert all(catalogues.get(f"gpu{i}") is not None for i in range(BACKENDS))  # each read once


async def test_a_probe_round_does_not_wait_for_the_reads_it_starts(make_pool: PoolFactory) -> None:
    held = HeldReads()
    pool = await make_pool(2, probe_first=False, middlewares=(held.middleware,))
    await pool.balancer.prober.probe_all()  # returns with both reads held
    assert all(backend.healthy for backend in pool.balancer.registry)
    await until(lambda: held.in_flight == 2)
    assert pool.balancer.catalogues.get("gpu0") is None  # not known yet: not eligible
    held.release.set()
    await pool.balancer.catalogue_reader.settled()
    assert all(pool.balancer.catalogues.get(name) is not None for name in ("gpu0", "gpu1"))


async def test_a_channel_that_first_connects_after_a_read_is_not_read_again(
    make_pool: PoolFactory,
) -> None:
    """A read made while the channel was down came after anything that
    dropped it; its first connection since is no sign of a restart."""
    paths: list[str] = []

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        paths.append(request.path)
        return await handler(request)

    pool = await make_pool(1, probe_first=False, middlewares=(count,))
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None
    up = gpu0.channel_id
    gpu0.channel_id = None  # as if its first probe came before its channel was up
    await pool.probe()
    gpu0.channel_id = up
    pool.clock.advance(1.0)
    await pool.probe()
    assert paths.count("/object_info") == 1
