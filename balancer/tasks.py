"""Stopping a background task: cancel it and wait until it has ended."""

from __future__ import annotations

import asyncio


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
