"""Shutdown and the late binder's sends in flight (jobs/forwards.py): once
shutdown begins nothing more is bound, and the sends bound so far go on
until `shutdown.timeout` (a job queued behind another send to the same
backend is sent too). Past the deadline, a send still waiting for its turn
reached nothing, so its job waits again and the next start sends it as
never sent (no failover from a backend that never had it); one whose
request had left is reconciled with its backend's queue; nothing is lost
and nothing runs twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import WSCloseCode, WSMsgType
from store_support import Reopen
from structlog.testing import capture_logs
from support import HANG_BOUND, HeldAnswer, Pool, PoolFactory, StartClient, colored

from balancer.config.routing_settings import RoutingSettings
from balancer.config.server_settings import ShutdownSettings

DURABLE = pytest.mark.parametrize("reopen_store", ["sqlite", "redis"], indirect=True)


async def two_bound_to_gpu0(
    make_pool: PoolFactory, reopen_store: Reopen, held: HeldAnswer, drain: float
) -> tuple[Pool, list[str], str, str]:
    """A balancer that lets sends finish for `drain` seconds at shutdown,
    with two jobs bound to gpu0 (`bind_two`)."""
    pool = await make_pool(
        1,
        routing=RoutingSettings(max_pending_per_backend=1),
        middlewares=(held.middleware(),),
        store=await reopen_store(),
        settings_overrides={"shutdown": ShutdownSettings(timeout=drain)},
    )
    return (pool, *await bind_two(pool, held))


async def bind_two(pool: Pool, held: HeldAnswer) -> tuple[list[str], str, str]:
    """`first`'s send to gpu0 (room for two) is held before gpu0 sees it
    (`held`, on gpu0); `behind` is bound to gpu0 too, its send waiting for
    `first`'s. Before them gpu0 held two jobs, cancelled (`earlier`)."""
    pool.emulators["gpu0"].pause()  # each job it takes holds before its first node
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(4)]
    earlier, (first, behind) = ids[:2], ids[2:]  # gpu0 is full with `earlier`
    held.armed = True
    for prompt_id in reversed(earlier):  # room for two: `first` and `behind` are bound
        resp = await pool.client.post(f"/api/jobs/{prompt_id}/cancel")
        assert await resp.json() == {"cancelled": True}
    await pool.done(earlier[0])  # interrupted (`earlier[1]`, pending, was dropped at once)
    await asyncio.wait_for(held.served.wait(), HANG_BOUND)
    await pool.balancer.binder.pump()  # this pass, or the one under way, binds `behind`
    store = pool.balancer.store
    for prompt_id in (first, behind):
        job = await store.get_job(prompt_id)
        assert job is not None and (job.state, job.backend) == ("dispatching", "gpu0")
    return earlier, first, behind


async def shut_down(pool: Pool, once_begun: Callable[[], None]) -> None:
    """Stop the balancer as SIGTERM does; `once_begun` runs when shutdown
    has begun (a client socket is told 1001) and the server stops."""
    ws = await pool.client.ws_connect("/ws?clientId=watcher")
    stopping = asyncio.ensure_future(pool.client.server.close())
    while (msg := await ws.receive(timeout=HANG_BOUND)).type != WSMsgType.CLOSE:
        pass
    assert msg.data == WSCloseCode.GOING_AWAY
    once_begun()
    await asyncio.wait_for(stopping, HANG_BOUND)


@DURABLE
async def test_a_send_queued_behind_another_is_finished_when_shutdown_begins(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    held = HeldAnswer("POST", "/prompt", before=True)
    pool, earlier, first, behind = await two_bound_to_gpu0(
        make_pool, reopen_store, held, HANG_BOUND
    )
    gpu0 = pool.emulators["gpu0"]
    await shut_down(pool, once_begun=held.release.set)  # gpu0 answers during the shutdown
    store = pool.balancer.store
    for prompt_id in (first, behind):
        job = await store.get_job(prompt_id)
        assert job is not None and (job.state, job.backend) in {
            ("queued", "gpu0"),
            ("running", "gpu0"),
        }, f"{prompt_id} recorded dispatched to gpu0"
    assert [item.prompt_id for item in gpu0.queue.pending()] == [behind], "it reached gpu0"
    again = await pool.restarted(aiohttp_client, reopen_store)
    gpu0.resume()
    await again.settle([first, behind])
    assert gpu0.executed == [earlier[0], first, behind], "each ran once (`earlier[1]` never)"


@DURABLE
async def test_a_send_still_queued_at_the_deadline_waits_again_and_runs_once(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    held = HeldAnswer("POST", "/prompt", before=True)
    pool, earlier, first, behind = await two_bound_to_gpu0(make_pool, reopen_store, held, 0.0)
    gpu0 = pool.emulators["gpu0"]
    try:
        await shut_down(pool, once_begun=lambda: None)  # `first` is held all along
        store = pool.balancer.store
        cut = await store.get_job(first)
        assert cut is not None and (cut.state, cut.backend) == ("dispatching", "gpu0"), (
            "its request left: whether gpu0 has it is for the next start to find out"
        )
        job = await store.get_job(behind)
        assert job is not None and (job.state, job.backend) == ("waiting", None), "never sent"
        with capture_logs() as logs:
            again = await pool.restarted(aiohttp_client, reopen_store)
            gpu0.resume()
            await again.settle([first, behind])
    finally:
        held.release.set()
    assert sorted(gpu0.executed) == sorted([earlier[0], first, behind]), "each ran once"
    for prompt_id in (first, behind):
        entry = (await (await again.client.get(f"/history/{prompt_id}")).json())[prompt_id]
        assert entry["status"]["status_str"] == "success"
    lost = [line for line in logs if line["event"] in ("retried", "failed")]
    assert [line["prompt_id"] for line in lost] in ([], [first]), (
        "`behind` never went to gpu0, so it was never lost from it"
    )
