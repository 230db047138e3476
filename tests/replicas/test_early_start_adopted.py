"""A start its backend tells before the answer to the send is recorded is
kept until the dispatch lands (tests/jobs/test_early_start.py). When the
dispatch does not land on this replica (another replica adopted the job
while this one stalled), the start is not kept: starts kept stay bounded
by the sends in flight, however many jobs go that way. A lost lease drops
them at once, before the sends end (JobMoves.forget)."""

from __future__ import annotations

import asyncio

from support import HANG_BOUND, HeldAnswer, colored

from tests.proxy.test_ws import connect

from .conftest import ReplicaFactory, beat

PAST_THE_LEASE = 5.5  # replicas.lease is 5 s


async def test_a_start_kept_for_a_job_adopted_elsewhere_is_dropped(
    make_replicas: ReplicaFactory,
) -> None:
    held = HeldAnswer("POST", "/prompt")
    r0, r1 = await make_replicas(2, backends=1, one_store=True, middlewares=(held.middleware(),))
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()  # each job starts, then holds before its first node
    jobs, ran = r0.balancer.jobs, []
    for i in range(3):
        client_id = f"c{i}"
        sock = await connect(r0, client_id)
        held.armed = True  # gpu0 queues the prompt; its answer to r0 is held
        body = {"prompt": colored(i), "client_id": client_id}
        sending = asyncio.ensure_future(r0.client.post("/prompt", json=body))
        try:
            while "execution_start" not in sock.types():  # relayed once r0 kept it
                await sock.next(HANG_BOUND)
            assert jobs.starts_awaiting_dispatch() == 1, "kept until the dispatch lands"
            r0.clock.advance(PAST_THE_LEASE)  # r0 stalls past its lease
            await beat(r1)  # r1 adopts the job, still dispatching, and follows it on gpu0
        finally:
            held.release.set()
        answer = await asyncio.wait_for(sending, HANG_BOUND)  # after r1's move
        assert answer.status == 200
        assert jobs.starts_awaiting_dispatch() == 0, f"job {i}: nothing left behind"
        await beat(r0)  # back: its lease was lost, and it joins again
        await r0.channels_up(["gpu0"])  # under a fresh id (r1 may hold its old one)
        gpu0.resume()
        ran.append((await answer.json())["prompt_id"])
        await r1.settle(ran[-1:])  # r1 follows it to its end
        gpu0.pause()
        held.served.clear()
        held.release.clear()
        await sock.ws.close()
    assert gpu0.executed == ran, "each ran once"


async def test_a_start_kept_is_dropped_when_the_lease_is_lost_mid_send(
    make_replicas: ReplicaFactory,
) -> None:
    """The lease lost while the send is still under way (its end not come):
    the replica follows none of its jobs any more, and keeps no start."""
    held = HeldAnswer("POST", "/prompt")
    r0, r1 = await make_replicas(2, backends=1, one_store=True, middlewares=(held.middleware(),))
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    jobs = r0.balancer.jobs
    sock = await connect(r0, "c0")
    held.armed = True  # gpu0 queues the prompt; its answer to r0 is held
    body = {"prompt": colored(0), "client_id": "c0"}
    sending = asyncio.ensure_future(r0.client.post("/prompt", json=body))
    try:
        while "execution_start" not in sock.types():
            await sock.next(HANG_BOUND)
        assert jobs.starts_awaiting_dispatch() == 1
        r0.clock.advance(PAST_THE_LEASE)  # r0 stalls past its lease
        await beat(r1)  # r1 adopts the job, still dispatching on r0
        assert jobs.starts_awaiting_dispatch() == 1, "r0 has not noticed yet"
        await beat(r0)  # r0 finds its lease lost: the send to gpu0 is still held
        assert not held.release.is_set()
        assert jobs.starts_awaiting_dispatch() == 0
    finally:
        held.release.set()
    answer = await asyncio.wait_for(sending, HANG_BOUND)
    gpu0.resume()
    await r1.settle([(await answer.json())["prompt_id"]])
    await sock.ws.close()
