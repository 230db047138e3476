"""Connection limits (issue 12, defect 5): a stalling client is cut after
`limits.header_timeout`, one peer holds at most `max_connections_per_peer`
connections, and everyone else is still served."""

from __future__ import annotations

import asyncio

from aiohttp import web

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
    data = await asyncio.wait_for(reader.read(), 5)
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


async def test_a_stalling_client_is_cut_and_others_are_served() -> None:
    running = await serve(ConnectionLimits(header_timeout=0.05, max_per_peer=100))
    reader, writer = await half_open(running)
    answer = await asyncio.wait_for(reader.read(), 5)  # the server closes it
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
    await asyncio.wait_for(below(limits, "127.0.0.1", 3), 5)  # the server saw the close
    assert (await get(running)).endswith(b"hello")
    for _, w in held:
        w.close()
    await running.runner.cleanup()
