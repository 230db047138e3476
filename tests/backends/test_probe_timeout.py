"""A probe's timeout runs from when its request is sent: on a balancer busy
opening 1,000 connections at start-up, the wait for its own connection is
not the backend's slowness. (Wall clock: the production deadline; the hold
is 2.5x the timeout and the answer is immediate once sent.)"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
from aiohttp import web

from balancer.upstream import Upstream, UpstreamTimeout, wall_deadline

TIMEOUT = 1.0
HOLD = 2.5 * TIMEOUT


async def probe_behind_a_held_connection(from_send: bool) -> Any:
    """A probe that waits HOLD seconds for the one connection another
    request holds, then is answered at once: its answer, or its error."""
    released = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await released.wait()
        return web.json_response({})

    async def queue(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/queue", queue)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = "http://{}:{}".format(*sock.getsockname())
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            upstream = Upstream(session, 300.0, 30.0, wall_deadline)
            holder = asyncio.ensure_future(upstream.get_json(url + "/slow"))
            probe = asyncio.ensure_future(
                upstream.get_json(url + "/queue", timeout=TIMEOUT, from_send=from_send)
            )
            await asyncio.wait([probe], timeout=HOLD)  # the connection stays held this long
            released.set()
            await holder
            return (await asyncio.gather(probe, return_exceptions=True))[0]
    finally:
        await runner.cleanup()


async def test_the_wait_for_a_connection_is_not_counted() -> None:
    assert await probe_behind_a_held_connection(from_send=True) == {"ok": True}


async def test_a_call_not_timed_from_its_send_counts_that_wait() -> None:
    answer = await probe_behind_a_held_connection(from_send=False)
    assert isinstance(answer, UpstreamTimeout)
