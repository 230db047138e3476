"""A replica that dies leaves its jobs to another one within its lease: each
job is taken by exactly one survivor, runs once, and its client gets its
end on whichever replica holds its socket. A replica that only stalled past
its lease and comes back follows none of them any more."""

from __future__ import annotations

import asyncio
from collections import Counter

from support import Pool, colored

from balancer.replicas.owners import KEY
from balancer.store import StoreUnavailable
from balancer.store.redis import RedisStore
from tests.jobs.test_told_once import about
from tests.proxy.test_ws import connect

from .conftest import ReplicaFactory, beat, kill

PAST_THE_LEASE = 5.5  # replicas.lease is 5 s


def runs(replica: Pool) -> Counter[str]:
    """How many times each prompt ran, over every backend."""
    return Counter(pid for emu in replica.emulators.values() for pid in emu.executed)


async def owners(replica: Pool) -> dict[str, str]:
    client = replica.balancer.replicas.owners.redis  # type: ignore[union-attr]
    raw = await client.hgetall("balancer:" + KEY)
    return {k.decode(): v.decode() for k, v in raw.items()}


def follows(replica: Pool, prompt_id: str) -> bool:
    return replica.balancer.follower.follows(prompt_id) or prompt_id in replica.balancer.jobs.queue


async def test_a_killed_replicas_job_is_adopted_and_its_client_gets_the_end(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1, one_store=True)
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    tab = await connect(r1, "tab")  # the client's socket is on the survivor
    job = (await r0.submit(colored(1), client_id="tab"))["prompt_id"]
    assert await owners(r0) == {job: "r0"}
    await kill(r0)
    r1.clock.advance(PAST_THE_LEASE)
    await beat(r1)
    assert await owners(r1) == {job: "r1"} and follows(r1, job)
    gpu0.resume()  # it ran on: its events went to r0's closed channel
    await r1.settle([job])
    stored = await r1.balancer.store.get_job(job)
    assert stored is not None and (stored.state, stored.attempts) == ("succeeded", 1)
    assert runs(r1) == {job: 1}
    frames = await tab.until_done(job)
    types = [f["type"] for f in frames if isinstance(f, dict) and f["type"] != "status"]
    assert types[0] == "execution_start", "relayed by r0 while it lived"
    assert types[-2:] == ["execution_success", "executing"], "the end, from r1"
    assert types.count("execution_success") == 1 and types.count("execution_start") == 1
    assert await owners(r1) == {}, "an ended job is followed by nobody"


async def test_of_two_survivors_each_job_goes_to_exactly_one(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1, r2 = await make_replicas(3, backends=2, one_store=True)
    for emulator in r0.emulators.values():
        emulator.pause()
    jobs = [(await r0.submit(colored(i)))["prompt_id"] for i in range(5)]
    waiting = [j.prompt_id for j in r0.balancer.jobs.queue]
    assert len(waiting) == 1, "two slots on each of the two backends, one job waits"
    await kill(r0)
    r0.clock.advance(PAST_THE_LEASE)
    await asyncio.gather(beat(r1), beat(r2))
    taken = await owners(r1)
    assert sorted(taken) == sorted(jobs) and set(taken.values()) <= {"r1", "r2"}
    for job in jobs:
        assert [follows(r, job) for r in (r1, r2)].count(True) == 1, job
    assert r0.balancer.replicas.leases.me.name not in [  # type: ignore[union-attr]
        m.name
        for m in await r1.balancer.replicas.leases.members()  # type: ignore[union-attr]
    ], "the dead replica's lease went with its jobs"
    for emulator in r0.emulators.values():
        emulator.resume()
    for replica in (r1, r2):
        mine = [job for job in jobs if taken[job] == replica.balancer.replicas.me.name]  # type: ignore[union-attr]
        await replica.settle(mine)
    assert runs(r1) == {job: 1 for job in jobs}, "nothing lost, nothing run twice"


async def test_a_replica_back_from_a_stall_follows_none_of_its_adopted_jobs(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1, one_store=True)
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    jobs = [(await r0.submit(colored(i)))["prompt_id"] for i in range(3)]
    (waits,) = [j.prompt_id for j in r0.balancer.jobs.queue]
    r0.clock.advance(PAST_THE_LEASE)  # r0 stalls: no beat for longer than its lease
    await beat(r1)
    assert set((await owners(r1)).values()) == {"r1"}
    assert not r0.balancer.replicas.leases.holds()  # type: ignore[union-attr]
    await beat(r0)  # back: its renewal finds the lease gone
    assert not any(follows(r0, job) for job in jobs), "it stopped following them"
    assert all(follows(r1, job) for job in jobs)
    assert waits in r1.balancer.jobs.queue, "the job r0 held back waits at r1 now"
    assert [m.alive(r0.clock()) for m in await r0.balancer.replicas.leases.members()] == [  # type: ignore[union-attr]
        True,
        True,
    ], "it joined again, with nothing to follow"
    gpu0.resume()
    await r0.probe()  # its probes leave the jobs to r1
    sent = [job for job in jobs if job != waits]
    await r1.settle(sent)  # their ends may come through r0's channel, still up
    await beat(r1)  # their room is free again
    await r1.settle([waits])
    assert runs(r1) == {job: 1 for job in jobs}


async def test_an_unresponsive_backend_keeps_an_adopted_job_for_the_grace(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=2, one_store=True)
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    job = (await r0.submit(colored(1)))["prompt_id"]
    assert await r0.owner(job) == "gpu0"
    await kill(r0)
    r1.hang("gpu0")  # alive, but it answers nothing
    r1.clock.advance(PAST_THE_LEASE)
    await beat(r1)
    assert follows(r1, job)
    for _ in range(3):  # probes time out, within routing.failover_grace (60 s)
        await r1.probe()
    stored = await r1.balancer.store.get_job(job)
    assert stored is not None and (stored.backend, stored.attempts) == ("gpu0", 1)
    assert stored.state == "running", "still its backend's"
    r1.hang("gpu0", hung=False)
    gpu0.resume()
    await r1.settle([job])
    assert runs(r1) == {job: 1}


async def test_an_end_told_by_a_replica_that_died_before_recording_it_is_not_told_again(
    make_replicas: ReplicaFactory,
) -> None:
    """r0 tells the end (its backend's frames, through Redis to the socket
    on r1) and dies before it records it: r1 adopts the job, finds it
    unended, and records its end without telling it a second time."""
    r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore)
    tab = await connect(r1, "tab")

    async def killed(prompt_id: str, entry: object) -> None:
        raise StoreUnavailable("r0 was killed")

    r0.balancer.store.put_history = killed  # type: ignore[method-assign]
    job = (await r0.submit(colored(1), client_id="tab"))["prompt_id"]
    told = await tab.until_done(job, 30)
    assert about(told, job)[-2:] == ["execution_success", "executing"]
    await kill(r0)
    r1.clock.advance(PAST_THE_LEASE)
    await beat(r1)
    await r1.settle([job])
    stored = await r1.balancer.store.get_job(job)
    assert stored is not None and stored.state == "succeeded" and runs(r1) == {job: 1}
    later = (await r1.submit(colored(2), client_id="tab"))["prompt_id"]
    frames = await tab.until_done(later, 30)  # after whatever r1 told of the first job
    assert about(frames, job) == [], "its end is not told again"
