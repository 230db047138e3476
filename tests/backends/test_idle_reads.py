"""A backend whose channel is up is read over HTTP every `channel_interval`
while anything says it holds something, and only every `idle_interval`
while nothing does: unknown is not idle, so its pushes, its last read,
prompts on their way and the balancer's own jobs there each keep it read."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from support import HANG_BOUND, Pool, PoolFactory, colored

from balancer.backends.state import Backend
from balancer.config.backend_settings import ProbeSettings
from tests.proxy.test_ws import connect

from .test_probe_rounds import counting

SETTINGS = ProbeSettings(
    interval=1.0, timeout=2.0, stale_after=5.0, channel_interval=2.0, idle_interval=30.0
)

QUEUED_ONE = {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}


async def reads(pool: Pool, paths: list[str], count: int) -> int:
    """How many times the balancer's probe rounds read /queue in `count`
    rounds, one a second (one backend: a round's starts are not spread)."""
    before = paths.count("/queue")
    for _ in range(count):
        pool.clock.advance(SETTINGS.interval)
        await pool.balancer.prober.probe_spread()
    return paths.count("/queue") - before


def gpu0(pool: Pool) -> Backend:
    backend = pool.balancer.registry.get("gpu0")
    assert backend is not None
    return backend


async def test_an_idle_backend_is_read_every_idle_interval_not_every_channel_interval(
    make_pool: PoolFactory,
) -> None:
    paths: list[str] = []
    pool = await make_pool(1, probe=SETTINGS, middlewares=(counting(paths),))
    assert await reads(pool, paths, 29) == 0, "nothing says it holds anything"
    assert gpu0(pool).is_fresh(pool.clock(), SETTINGS), "its pings vouch for its reading"
    assert await reads(pool, paths, 1) == 1, "idle_interval passed: read"


async def post_directly(pool: Pool) -> None:
    """A prompt posted to gpu0 directly, not through the balancer."""
    async with aiohttp.ClientSession() as session:
        url = pool.servers["gpu0"].make_url("/prompt")
        async with session.post(url, json={"prompt": colored(1)}) as resp:
            assert resp.status == 200


async def test_a_backend_whose_pushes_say_it_holds_a_prompt_is_read_every_channel_interval(
    make_pool: PoolFactory,
) -> None:
    """Its last read showed nothing, but its channel pushed a prompt since."""
    paths: list[str] = []
    pool = await make_pool(1, probe=SETTINGS, middlewares=(counting(paths),))
    pool.emulators["gpu0"].pause()
    sock = await connect(pool, "watcher")
    await post_directly(pool)
    while await sock.next(HANG_BOUND) != QUEUED_ONE:  # its push was relayed
        pass
    assert await reads(pool, paths, 4) == 2
    await sock.ws.close()


async def test_a_backend_whose_last_read_showed_a_prompt_is_read_every_channel_interval(
    make_pool: PoolFactory,
) -> None:
    """Its pushes since say nothing is left, but /balancer/status shows
    what its last read held until it is read again."""
    paths: list[str] = []
    pool = await make_pool(1, probe=SETTINGS, middlewares=(counting(paths),))
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    await post_directly(pool)
    await pool.probe()
    assert gpu0(pool).snapshot is not None and gpu0(pool).snapshot.queue_size == 1
    pool.clock.advance(0.5)
    gpu0(pool).record_push(0, pool.clock())  # newer than that read
    assert await reads(pool, paths, 2) == 1


def failing_history(failing: asyncio.Event, failed: asyncio.Event) -> Any:
    """GET /history/{id} answers 500 while `failing` is set (`failed` then set)."""

    @web.middleware
    async def fail(request: web.Request, handler: Any) -> web.StreamResponse:
        if failing.is_set() and request.path.startswith("/history/"):
            failed.set()
            return web.Response(status=500, text="500 Internal Server Error")
        return await handler(request)

    return fail


async def test_a_backend_holding_a_job_of_the_balancer_is_read_though_its_pushes_say_empty(
    make_pool: PoolFactory,
) -> None:
    """The job ran, and its backend's pushes, like its last read, say its
    queue is empty; but its end could not be read (its history answered
    500), so the job is still the balancer's there: the backend is read
    every channel_interval until the job is reconciled."""
    paths: list[str] = []
    failing, failed = asyncio.Event(), asyncio.Event()
    pool = await make_pool(
        1, probe=SETTINGS, middlewares=(counting(paths), failing_history(failing, failed))
    )
    failing.set()
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    await asyncio.wait_for(failed.wait(), HANG_BOUND)  # its end told, then not read
    await pool.emulators["gpu0"].wait_idle(HANG_BOUND)
    await pool.probe()  # its queue is empty now; the end is still not read
    backend = gpu0(pool)
    assert backend.newest is not None and backend.newest[1] == 0 and backend.unseen == 0
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and not job.finished
    failing.clear()
    assert await reads(pool, paths, 3) >= 1
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.finished, "reconciled within channel_interval"
    assert await pool.balancer.store.get_history(prompt_id) is not None


async def test_a_backend_whose_channel_is_down_is_read_every_round(
    make_pool: PoolFactory,
) -> None:
    paths: list[str] = []
    pool = await make_pool(1, probe=SETTINGS, middlewares=(counting(paths),))
    await pool.balancer.channels.stop("gpu0")
    assert await reads(pool, paths, 3) == 3, "unknown is not idle"
