"""On one store, a replica's probes reconcile only the jobs it sent: another
replica's job, just sent, may be missing from a probe that left before it
arrived, and ending it from a history without it would run it again."""

from __future__ import annotations

from support import Pool, colored

from balancer.backends.state import LoadSnapshot
from balancer.store import MemoryStore

from .conftest import ReplicaFactory


async def test_a_probe_that_missed_another_replicas_new_job_leaves_it_alone(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1, one_store=True)
    r0.emulators["gpu0"].pause()
    await r0.submit(colored(1))  # running
    queued = (await r0.submit(colored(2)))["prompt_id"]  # pending on gpu0
    store = r0.balancer.store
    before = await store.get_job(queued)
    assert before is not None and before.state == "queued" and before.attempts == 1
    gpu0 = r1.balancer.registry.get("gpu0")
    assert gpu0 is not None
    r1.clock.advance(1.0)
    left_before_it_arrived = LoadSnapshot(r1.clock(), (), (), None, None)
    await r1.balancer.follower.reconcile(gpu0, left_before_it_arrived)
    after = await store.get_job(queued)
    assert after is not None and (after.state, after.attempts) == ("queued", 1)
    assert r0.emulators["gpu0"].queue.remaining() == 2, "nothing sent twice"


async def one_queued(make_replicas: ReplicaFactory, store: MemoryStore) -> tuple[Pool, str]:
    """A replica on `store` with one job running on gpu0 and one queued there."""
    (replica,) = await make_replicas(1, backends=1, store=store)
    replica.emulators["gpu0"].pause()
    await replica.submit(colored(1))
    return replica, (await replica.submit(colored(2)))["prompt_id"]


async def unfinished_on(store: MemoryStore) -> list[str]:
    return sorted(j.prompt_id for j in await store.unfinished_jobs() if j.state == "queued")


async def test_the_first_replica_up_follows_the_unfinished_jobs_it_finds(
    make_replicas: ReplicaFactory,
) -> None:
    store = MemoryStore()
    first, left = await one_queued(make_replicas, store)  # left queued when the pool stops
    await first.client.close()  # the whole pool stops
    assert await unfinished_on(store) == [left]
    (again,) = await make_replicas(1, backends=1, store=store)  # its gpu0 never saw the job
    await again.probe()
    job = await store.get_job(left)
    assert job is not None and job.lost_from == ("gpu0",), "reconciled, as after a restart"


async def test_a_replica_that_starts_beside_a_live_one_leaves_its_jobs_alone(
    make_replicas: ReplicaFactory,
) -> None:
    store = MemoryStore()
    _, queued = await one_queued(make_replicas, store)
    (late,) = await make_replicas(1, backends=1, store=store)  # live still holds its lease
    await late.probe()  # its own gpu0 shows no such job
    assert await unfinished_on(store) == [queued], "the live replica's job is its own"
