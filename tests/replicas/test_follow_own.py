"""On one store, a replica's probes reconcile only the jobs it sent: another
replica's job, just sent, may be missing from a probe that left before it
arrived, and ending it from a history without it would run it again."""

from __future__ import annotations

from support import colored

from balancer.backends.state import LoadSnapshot

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
