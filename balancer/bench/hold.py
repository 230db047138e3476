"""`python -m balancer.bench.hold URL`: idle WebSocket clients for `bench ws`.

Reads commands on stdin, one a line: `open N` opens N more sockets to URL
(each with its own clientId, each counted once its first frame, the `status`
with its sid, has arrived) and answers `open TOTAL` on stdout; `frames` answers
`frames COUNT` (frames received so far); `quit` or end of input closes them all.
Every socket reads and discards what it is sent, as an idle browser tab would.
`holder(URL)` runs one from a bench, and asks it over its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import aiohttp

from balancer.tasks import cancel_all

OPEN_TIMEOUT = 30.0
PARALLEL_OPENS = 50


class Holder:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.opened = 0
        self.frames = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self, count: int) -> None:
        gate = asyncio.Semaphore(PARALLEL_OPENS)
        ready: list[asyncio.Future[None]] = []
        for _ in range(count):
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            ready.append(done)
            self.tasks.append(asyncio.create_task(self._hold(f"hold-{self.opened}", gate, done)))
            self.opened += 1
        await asyncio.wait_for(asyncio.gather(*ready), OPEN_TIMEOUT)

    async def _hold(self, sid: str, gate: asyncio.Semaphore, ready: asyncio.Future[None]) -> None:
        async with gate:
            try:
                ws = await self.session.ws_connect(f"{self.url}?clientId={sid}", max_msg_size=0)
                await ws.receive()
            except (aiohttp.ClientError, OSError) as exc:
                ready.set_exception(exc)
                return
        ready.set_result(None)
        async with ws:
            async for _ in ws:
                self.frames += 1

    async def close(self) -> None:
        await cancel_all(self.tasks)


async def serve(url: str) -> None:
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        holder = Holder(session, url)
        try:
            while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
                command, _, arg = line.partition(" ")
                if command == "open":
                    await holder.open(int(arg))
                    print(f"open {holder.opened}", flush=True)
                elif command == "frames":
                    print(f"frames {holder.frames}", flush=True)
                elif command == "quit":
                    break
        finally:
            await holder.close()


class HolderProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, line: str, timeout: float = 60.0) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()
        answer = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not answer:
            raise RuntimeError("the holder process exited")
        return answer.decode().strip()


@contextlib.asynccontextmanager
async def holder(ws_url: str) -> AsyncIterator[HolderProcess]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "balancer.bench.hold", ws_url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield HolderProcess(proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m balancer.bench.hold WS_URL", file=sys.stderr)
        return 2
    asyncio.run(serve(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
