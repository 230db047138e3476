"""`python -m balancer.bench.reader URL`: one GET in its own process.

Reads the answer in chunks and throws them away, then prints `BYTES SECONDS`.
A bench that times other requests while a large answer is read runs the
reader here, so reading the large answer does not hold up its own loop.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp

CHUNK = 1 << 20


async def read(url: str) -> tuple[int, float]:
    began, size = time.perf_counter(), 0
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        async for chunk in resp.content.iter_chunked(CHUNK):
            size += len(chunk)
    return size, time.perf_counter() - began


def main() -> None:
    size, seconds = asyncio.run(read(sys.argv[1]))
    print(size, f"{seconds:.6f}")


if __name__ == "__main__":
    main()
