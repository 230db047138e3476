"""`python -m balancer.bench.floor PORT BACKEND_URL...`: the floor of `bench ws`.

A plain aiohttp relay with no logic: one WebSocket to each backend, and every
message read from any of them written to every client socket connected to
its own `/ws` with aiohttp's `send_str`/`send_bytes` (one write per socket per
message). It does no routing, no access checks and no JSON work, so the CPU
it spends per job is what relaying a job's events to N sockets costs at
least in Python with aiohttp; `bench ws` compares the balancer's CPU per job
against it in the same run, with the same number of sockets held open by the
same kind of holder process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType, web

from balancer.bench.harness import child


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_process(
    port: int, backends: Sequence[str], cores: frozenset[int] | None = None
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """The floor relay in its own process (a context manager), on `cores`
    when given."""
    return child([str(port), *backends], module="balancer.bench.floor", cores=cores)


Sockets = set[web.WebSocketResponse]


async def relay(session: aiohttp.ClientSession, url: str, sockets: Sockets) -> None:
    while True:  # the backends may still be starting
        try:
            channel = await session.ws_connect(url.replace("http", "ws", 1) + "/ws?clientId=floor")
            break
        except (aiohttp.ClientError, OSError):
            await asyncio.sleep(0.2)
    async with channel:
        async for msg in channel:
            for ws in list(sockets):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    if msg.type == WSMsgType.TEXT:
                        await ws.send_str(msg.data)
                    elif msg.type == WSMsgType.BINARY:
                        await ws.send_bytes(msg.data)


async def serve(port: int, backends: Sequence[str]) -> None:
    sockets: Sockets = set()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        sockets.add(ws)
        await ws.send_str('{"type": "status", "data": {}}')  # the holder waits for one frame
        try:
            async for _ in ws:
                pass
        finally:
            sockets.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    app.router.add_get("/health", lambda _: asyncio.sleep(0, web.Response(text="ok")))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(relay(session, url, sockets) for url in backends))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m balancer.bench.floor PORT BACKEND_URL...", file=sys.stderr)
        return 2
    asyncio.run(serve(int(argv[0]), argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
