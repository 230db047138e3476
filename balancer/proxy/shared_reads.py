"""Request coalescing: concurrent identical reads share one upstream round.

Thirty-two clients polling GET /queue at once cost the backends one /queue
each, not thirty-two. A read that joins one already in flight gets an answer
at most one round trip old, which no client of ComfyUI can tell apart from
its own request being a moment earlier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class SharedReads:
    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a lone failure logs nothing
            raise
        finally:
            del self._inflight[key]
        future.set_result(result)
        return result
