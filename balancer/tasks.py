"""Background tasks: stopping them, and waiting until they are over."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from typing import Any


async def stop(task: asyncio.Task[None], patience: float = 1.0) -> None:
    """Cancel `task` and wait until it has ended, cancelling it again every
    `patience` seconds while it has not: on Python 3.11 a cancel can be lost
    (a task seen stuck "cancelling" on a read that never ends, its cancel
    never delivered), and one lost cancel must not hang a shutdown. Any
    error the task ended with other than its cancellation is raised."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=patience)
    if not task.cancelled():
        task.result()


async def cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel every one of `tasks` and wait until each has ended, whatever
    it ended with (shutdown: the work under way is dropped)."""
    cancelled = list(tasks)
    for task in cancelled:
        task.cancel()
    await asyncio.gather(*cancelled, return_exceptions=True)


async def settle(tasks: Collection[asyncio.Future[Any]]) -> None:
    """Wait until `tasks` is empty, whatever each ended with: a live
    collection that each task leaves once done (a done callback removes it),
    and that tasks started meanwhile join."""
    while tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
