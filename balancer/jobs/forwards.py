"""The late binder's sends in flight: a job bound to a backend is forwarded
(pin, files, POST, the `dispatched` record) in the background, so the
binder goes on binding the next job meanwhile instead of waiting for that
backend's answer and the store's round trips.

Sends to one backend go out one after the other, in the order their jobs
were bound (a backend starts the first prompt it gets, and the balancer
chose the order). At shutdown, once nothing more is bound, the sends
started finish in their turns until the drain deadline (`close`); then
what is left is cut. A send that had its backend's turn may have reached
it: its job stays `dispatching` there, which a restart (or the replica
adopting its jobs) reconciles with that backend's queue, as a send cut
short by a crash. A send still waiting for its turn reached nothing: its
job waits again (`put_back`), to be bound after the restart, or by the
replica adopting it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from balancer.jobs.binding import Bound
from balancer.tasks import cancel_all, settle


class Forwards:
    def __init__(
        self,
        forward: Callable[[Bound], Awaitable[None]],
        put_back: Callable[[Bound], Awaitable[None]],
    ) -> None:
        self._forward = forward
        self._put_back = put_back  # a send cut at shutdown before its turn came
        self._tasks: dict[asyncio.Task[None], Bound] = {}
        self._order: dict[str, asyncio.Lock] = {}  # backend name -> its sends, one at a time
        self._in_turn_now: set[asyncio.Task[None]] = set()  # sends that had their turn

    def start(self, bound: Bound) -> None:
        """Forward `bound` in the background, after the sends bound to its
        backend before it."""
        task = asyncio.ensure_future(self._in_turn(bound))
        self._tasks[task] = bound
        task.add_done_callback(self._tasks.pop)

    async def _in_turn(self, bound: Bound) -> None:
        async with self._order.setdefault(bound.backend.name, asyncio.Lock()):
            me = asyncio.current_task()
            assert me is not None
            self._in_turn_now.add(me)  # from here its request may leave
            try:
                await self._forward(bound)
            finally:
                self._in_turn_now.discard(me)

    async def settled(self) -> None:
        """Wait until every send started so far is over."""
        await settle(self._tasks.keys())

    async def close(self, patience: float) -> None:
        """Shutdown, once nothing more is bound: the sends started go on for
        up to `patience` seconds, then those left are cut (see above)."""
        if self._tasks and patience > 0:
            await asyncio.wait(list(self._tasks), timeout=patience)
        left = {task: bound for task, bound in self._tasks.items() if not task.done()}
        unsent = [bound for task, bound in left.items() if task not in self._in_turn_now]
        await cancel_all(left)
        for bound in unsent:
            await self._put_back(bound)
