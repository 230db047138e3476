"""The late binder's sends in flight: a job bound to a backend is forwarded
(pin, files, POST, the `dispatched` record) in the background, so the
binder goes on binding the next job meanwhile instead of waiting for that
backend's answer and the store's round trips.

Sends to one backend go out one after the other, in the order their jobs
were bound (a backend starts the first prompt it gets, and the balancer
chose the order). At shutdown the sends still in flight are cancelled:
their jobs stay `dispatching` in the store, which a restart reconciles, as
a send cut short by a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from balancer.jobs.dispatch import Bound


class Forwards:
    def __init__(
        self, forward: Callable[[Bound], Awaitable[None]], abandon: Callable[[str], None]
    ) -> None:
        self._forward = forward
        self._abandon = abandon  # a send cancelled at shutdown, maybe before it began
        self._tasks: dict[asyncio.Task[None], Bound] = {}
        self._order: dict[str, asyncio.Lock] = {}  # backend name -> its sends, one at a time

    def start(self, bound: Bound) -> None:
        """Forward `bound` in the background, after the sends bound to its
        backend before it."""
        task = asyncio.ensure_future(self._in_turn(bound))
        self._tasks[task] = bound
        task.add_done_callback(self._tasks.pop)

    async def _in_turn(self, bound: Bound) -> None:
        async with self._order.setdefault(bound.backend.name, asyncio.Lock()):
            await self._forward(bound)

    async def settled(self) -> None:
        """Wait until every send started so far is over."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks.items())
        for task, _ in tasks:
            task.cancel()
        await asyncio.gather(*(task for task, _ in tasks), return_exceptions=True)
        for _, bound in tasks:
            self._abandon(bound.job.prompt_id)
