"""A run cancelled while a node's work runs in a thread (the emulator
stopping) ends only once that work has: a thread cannot be stopped, and a
caller that removes the emulator's files right after its stop (the demo)
must not find a PNG written into them afterwards."""

from __future__ import annotations

import asyncio
import threading

import pytest

from balancer.emulator.executor import in_thread


async def test_a_cancelled_run_ends_after_its_thread_work() -> None:
    started, release = threading.Event(), threading.Event()
    wrote: list[str] = []

    def write_png() -> None:
        started.set()
        release.wait(30)
        wrote.append("png")

    task = asyncio.ensure_future(in_thread(write_png))
    assert await asyncio.to_thread(started.wait, 30)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.2)
    assert not done  # still writing: the cancel waits for it
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wrote == ["png"]  # over before the run ended


async def test_work_in_a_thread_gives_its_result() -> None:
    assert await in_thread(sum, [1, 2, 3]) == 6
