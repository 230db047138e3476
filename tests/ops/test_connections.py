"""Connection limits (issue 12, defect 5): a stalling client is cut after
`limits.header_timeout`, one peer holds at most `max_connections_per_peer`
connections, and everyone else is still served."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from support import HANG_BOUND

from balancer.connguard import ConnectionLimits
from balancer.runner import Running, start_guarded


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def serve(limits: ConnectionLimits) -> Running:
    app = web.Application()
    app.router.add_get("/", hello)
    return await start_guarded(app, "127.0.0.1", 0, limits)


async def get(running: Running, source: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", running.port, local_addr=(source, 0)
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), HANG_BOUND)
    writer.close()
    return data


async def half_open(running: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
    await writer.drain()
    return reader, writer


async def below(limits: ConnectionLimits, peer: str, count: int) -> None:
    while limits.open.get(peer, 0) >= count:
        await asyncio.sleep(0)


class Deadlines:
    """Header deadlines that pass when the test says so: on the wall clock, a
    deadline short enough to pass during a test could pass on a well-behaved
    client too, whenever a loaded machine paused the test that long."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[tuple[float, Callable[[], None]]] = asyncio.Queue()

    def __call__(self, seconds: float, expire: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.get_running_loop().call_later(HANG_BOUND * 60, expire)  # not in a test

        def now() -> None:
            handle.cancel()
            expire()

        self.started.put_nowait((seconds, now))
        return handle


async def test_a_stalling_client_is_cut_and_others_are_served() -> None:
    deadlines = Deadlines()
    running = await serve(ConnectionLimits(header_timeout=7.5, max_per_peer=100, timer=deadlines))
    reader, writer = await half_open(running)
    seconds, expire = await asyncio.wait_for(deadlines.started.get(), HANG_BOUND)
    assert seconds == 7.5  # limits.header_timeout after it connected
    expire()  # its headers are still not complete when it passes
    answer = await asyncio.wait_for(reader.read(), HANG_BOUND)  # the server closes it
    assert answer.startswith(b"HTTP/1.1 408")
    assert (await get(running)).endswith(b"hello")
    writer.close()
    await running.runner.cleanup()


async def test_one_peer_cannot_hold_more_than_its_share() -> None:
    limits = ConnectionLimits(header_timeout=60.0, max_per_peer=3)
    running = await serve(limits)
    held = [await half_open(running) for _ in range(3)]
    refused = await get(running)
    assert refused.startswith(b"HTTP/1.1 503")
    assert (await get(running, source="127.0.0.2")).endswith(b"hello")  # another host
    _, writer = held.pop()
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(below(limits, "127.0.0.1", 3), HANG_BOUND)  # the server saw the close
    assert (await get(running)).endswith(b"hello")
    for _, w in held:
        w.close()
    await running.runner.cleanup()
