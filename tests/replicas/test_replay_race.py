"""A client that reconnects on another replica after a replica wrote it
frames but before that replica recorded them as handed (journal.py: the
mark moves only once a frame was written) loses none of them: its new
socket gets them again, once each, in order, then the rest.

Before, the mark moved first and was taken back if the socket had closed
meanwhile: a reconnect elsewhere between the two replayed from the moved
mark, and neither socket was ever written those frames."""

from __future__ import annotations

import asyncio

from tests.proxy.test_ws import connect

from .conftest import ReplicaFactory, published
from .test_replay import HeldMarks, closed, job_frames, submit, tab_on_r1


async def test_a_reconnect_elsewhere_before_the_mark_lands_loses_nothing(
    make_replicas: ReplicaFactory,
) -> None:
    tab = await tab_on_r1(make_replicas)
    r0, r1, r2, whole, first, hub = tab.r0, tab.r1, tab.r2, tab.whole, tab.first, tab.hub
    held = HeldMarks(hub.bus.redis, hub.bus, "tab")  # r1's marks of `tab` wait
    hub.bus.redis = held  # type: ignore[assignment]
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()  # the job held before its first node, its start told
    prompt_id = await submit(r0, "tab")
    await asyncio.wait_for(held.asked.wait(), 30)  # r1 wrote `first` frames, not yet marked
    while not job_frames(first.frames, prompt_id):
        await first.next(30)  # the client got one at least
    await closed(r1, first)
    again = await connect(r2, "tab")
    await published(r2)  # its replay read
    held.gate.set()
    await published(r1)  # r1's mark applied
    gpu0.resume()
    frames = job_frames(await again.until_done(prompt_id, 30), prompt_id)
    heard = job_frames(first.frames, prompt_id)
    assert heard == whole[: len(heard)]
    assert frames == whole, "all of them on the new socket, those the first heard again"
