"""A shutdown's steps share one deadline, `shutdown.timeout` counted from
its start on the injected clock (balancer/shutdown.py): with a request and a
webhook delivery both held past it, the request is cut when the deadline
passes and the webhook drain gets nothing more, instead of the request drain
and then the webhook drain each taking the whole timeout."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs
from support import HANG_BOUND, HeldAnswer, Pool, PoolFactory, colored

from balancer.config.delivery_settings import WebhookSettings
from balancer.config.server_settings import ShutdownSettings

TIMEOUT = 40.0  # seconds on the injected clock: no wall-clock wait depends on it


async def held_receiver(arrived: asyncio.Event, release: asyncio.Event) -> TestServer:
    """A webhook receiver that takes each delivery and answers only once released."""

    async def hook(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_every_shutdown_step_ends_by_one_deadline(make_pool: PoolFactory) -> None:
    waits: list[tuple[float, float]] = []  # (injected clock, seconds) of each timer
    pools: list[Pool] = []

    async def timer(seconds: float) -> None:
        """Virtual time: the seconds pass at once on the balancer's clock."""
        clock = pools[0].clock
        waits.append((clock(), seconds))
        clock.advance(seconds)

    held = HeldAnswer("GET", "/features", before=True)
    pool = await make_pool(
        1,
        middlewares=(held.middleware(),),
        settings_overrides={
            "shutdown": ShutdownSettings(timeout=TIMEOUT),
            "webhooks": WebhookSettings(secret="s", allow=("127.0.0.1",)),
        },
        shutdown_timer=timer,
    )
    pools.append(pool)
    arrived, release = asyncio.Event(), asyncio.Event()
    receiver = await held_receiver(arrived, release)
    try:
        job = await pool.submit(colored(1), extra_data={"webhook": str(receiver.make_url("/hook"))})
        await pool.settle([job["prompt_id"]])
        await asyncio.wait_for(arrived.wait(), HANG_BOUND)  # its delivery is in flight
        held.armed = True
        slow = asyncio.ensure_future(pool.client.get("/features"))  # passed through, held
        await asyncio.wait_for(held.served.wait(), HANG_BOUND)

        start = pool.clock()
        with capture_logs() as logs:
            await asyncio.wait_for(pool.client.server.close(), HANG_BOUND)
    finally:
        release.set()
        held.release.set()
        await receiver.close()

    deadline = start + TIMEOUT
    assert pool.clock() == deadline  # the steps waited out one timeout between them
    assert waits and all(at + seconds <= deadline for at, seconds in waits)
    events = [(e["event"], e.get("step"), e.get("prompt_id")) for e in logs]
    assert ("shutdown_step_cut", "requests", None) in events
    assert ("webhook_undelivered", None, job["prompt_id"]) in events
    assert (await asyncio.gather(slow, return_exceptions=True))[0] is not None
