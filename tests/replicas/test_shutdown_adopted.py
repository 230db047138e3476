"""A replica that shuts down with a send still waiting for its turn at the
drain deadline (tests/jobs/test_shutdown_sends.py) leaves that job waiting:
the replica that adopts its jobs sends it as never sent, and each job runs
once."""

from __future__ import annotations

from structlog.testing import capture_logs
from support import HeldAnswer

from balancer.config.server_settings import ShutdownSettings
from tests.jobs.test_shutdown_sends import bind_two, shut_down

from .conftest import ReplicaFactory, beat


async def test_a_send_cut_at_shutdown_is_sent_by_the_replica_adopting_it(
    make_replicas: ReplicaFactory,
) -> None:
    held = HeldAnswer("POST", "/prompt", before=True)
    r0, r1 = await make_replicas(
        2,
        backends=1,
        one_store=True,
        middlewares=(held.middleware(),),
        shutdown=ShutdownSettings(timeout=0.0),
    )
    gpu0 = r0.emulators["gpu0"]
    try:
        earlier, first, behind = await bind_two(r0, held)  # bound by r0
        await shut_down(r0, once_begun=lambda: None)  # past the deadline at once
        job = await r0.balancer.store.get_job(behind)
        assert job is not None and (job.state, job.backend) == ("waiting", None), "never sent"
        with capture_logs() as logs:
            await beat(r1)  # r0 left: r1 adopts its jobs
            await r1.probe()
            gpu0.resume()
            await r1.settle([first, behind])
    finally:
        held.release.set()
    assert sorted(gpu0.executed) == sorted([earlier[0], first, behind]), "each ran once"
    lost = [line["prompt_id"] for line in logs if line["event"] in ("retried", "failed")]
    assert lost in ([], [first]), "`behind` never went to gpu0, so it was never lost from it"
