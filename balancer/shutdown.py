"""One deadline for the whole shutdown: `shutdown.timeout` counted from its
start (the first `on_shutdown` step), on the injected clock. Every drain
step (client sockets told 1001, requests in flight, the late binder's sends,
webhooks in flight) gets only what is left of it, so a shutdown ends by the
one deadline instead of each step taking the whole timeout after the last.

`InFlight` is the requests being answered (the middleware enters each one);
at the deadline the ones left are cancelled, as aiohttp does past its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from balancer.logs import get_logger
from balancer.tasks import cancel_all

log = get_logger("balancer.shutdown")

Clock = Callable[[], float]
Timer = Callable[[float], Awaitable[None]]  # waits that many seconds (asyncio.sleep)


class ShutdownDeadline:
    def __init__(self, timeout: float, clock: Clock, timer: Timer) -> None:
        self.timeout = timeout
        self.clock = clock
        self.timer = timer  # counts the seconds `left` gives on `clock`'s time
        self._until: float | None = None

    def begin(self) -> None:
        """Shutdown begins now (once: a second call keeps the first start)."""
        if self._until is None:
            self._until = self.clock() + self.timeout

    def left(self) -> float:
        """Seconds until the deadline (it begins at the first step that asks)."""
        self.begin()
        assert self._until is not None
        return max(0.0, self._until - self.clock())

    async def within(self, step: str, work: Coroutine[Any, Any, object]) -> bool:
        """Run `work` until it ends or the deadline passes (then it is
        cancelled, and False). `step` names it in the log line of a cut."""
        task = asyncio.ensure_future(work)
        timer = asyncio.ensure_future(self.timer(self.left()))
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finished = task.done()
        await cancel_all([timer] if finished else [timer, task])
        if not finished:
            log.warning("shutdown_step_cut", step=step, timeout=self.timeout)
        return finished


class InFlight:
    """The requests being answered now, each in the task answering it."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Around one request's answer (the middleware)."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiohttp answers in a task
            yield
            return
        self._tasks.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._tasks.discard(task)
            if not self._tasks:
                self._idle.set()

    async def finish(self, deadline: ShutdownDeadline) -> None:
        """Shutdown (nothing new is accepted): the requests in flight finish
        until the deadline; the ones left then are cut."""
        if not await deadline.within("requests", self._idle.wait()):
            log.warning("requests_cut", count=len(self._tasks))
            for task in list(self._tasks):
                task.cancel()
