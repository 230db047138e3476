"""Request coalescing: concurrent identical reads share one upstream round.

Thirty-two clients polling GET /queue at once cost the backends one /queue
each, not thirty-two. A read joins one in flight only under the same key,
and the key says what the answer depends on (`aggregate_routes.healthy_json`:
the path, and each backend's pushes and channel and the balancer's writes,
the stamp by which `KeptReads` gives an answer again). So a read gets an
answer asked before it arrived only when nothing the balancer knows of
changed in between: never one asked before a write the balancer sent (a
client that posts a prompt and then reads `/queue` sees it), nor one asked
before a backend's `status` push; otherwise at most one round trip old,
which no client of ComfyUI can tell apart from its own request being a
moment earlier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class SharedReads:
    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[Any]]) -> Any:
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
