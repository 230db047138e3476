"""A send whose answer never came back (it timed out) after the backend had
queued the prompt: the job may be on that backend, so it is not sent there
again (each send would be one more copy on that GPU) until a probe shows it
there, and then it is followed there. It runs once, and its client sees one
end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientWebSocketResponse
from support import HeldAnswer, Pool, PoolFactory, colored

from balancer.config.backend_settings import ProbeSettings
from balancer.config.routing_settings import RoutingSettings


async def ends_seen(ws: Any, prompt_id: str, marker: str) -> list[str]:
    """The end messages for `prompt_id` on a client socket, up to the end of
    `marker`, a job submitted after it on the same backend."""
    seen: list[str] = []
    while True:
        msg = await ws.receive_json(timeout=10.0)
        data = msg.get("data", {})
        ended = msg["type"] == "executing" and data.get("node") is None
        if data.get("prompt_id") == marker and ended:
            return seen
        if data.get("prompt_id") == prompt_id and (ended or msg["type"] == "execution_success"):
            seen.append(msg["type"])


@dataclass
class LostAnswer:
    pool: Pool
    ws: ClientWebSocketResponse
    prompt_id: str  # on gpu0, whose answer to its send never came
    sends: list[asyncio.Timeout]  # the deadlines of the sends to gpu0
    running: str | None = None  # ran on gpu0 first, held at its first node


async def lost_answer(make_pool: PoolFactory) -> LostAnswer:
    """The only backend runs one job and holds another, and a third waits in
    the balancer. The second is cancelled, so the third is sent to gpu0,
    which queues it; the answer is held and the send times out."""
    held = HeldAnswer("POST", "/prompt")
    routing = RoutingSettings(failover_grace=60.0)
    probe = ProbeSettings(unhealthy_after=1)
    pool = await make_pool(1, probe=probe, routing=routing, middlewares=(held.middleware(),))
    pool.emulators["gpu0"].pause()
    running = (await pool.submit(colored(0)))["prompt_id"]
    second = (await pool.submit(colored(1)))["prompt_id"]  # pending on gpu0
    ws = await pool.client.ws_connect("/ws?clientId=c")
    prompt_id = (await pool.submit(colored(2), client_id="c"))["prompt_id"]
    assert len(pool.balancer.jobs.queue) == 1, "it waits in the balancer"
    sends = pool.stalls.deadlines(str(pool.servers["gpu0"].make_url("/prompt")))
    retried = pool.watch("retried", prompt_id)
    held.armed = True
    try:
        cancel = await pool.client.post(f"/api/jobs/{second}/cancel")  # room on gpu0
        assert cancel.status == 200
        await asyncio.wait_for(held.served.wait(), 10.0)  # gpu0 has it; no answer yet
        assert len(sends) == 1
        sends[0].reschedule(asyncio.get_running_loop().time())  # the send times out
        await asyncio.wait_for(retried.wait(), 10.0)
        await pool.bind()  # room on gpu0 as far as the balancer knows
        assert len(sends) == 1, "not sent again while it may be on gpu0"
    finally:
        held.release.set()
    return LostAnswer(pool, ws, prompt_id, sends, running)


async def ran_once(lost: LostAnswer) -> None:
    """It ran once on gpu0, succeeded, and its client saw one end."""
    pool, prompt_id = lost.pool, lost.prompt_id
    await pool.settle([prompt_id] if lost.running is None else [lost.running, prompt_id])
    marker = (await pool.submit(colored(3), client_id="c"))["prompt_id"]
    assert await ends_seen(lost.ws, prompt_id, marker) == ["execution_success", "executing"]
    await pool.wait_idle()
    assert pool.emulators["gpu0"].executed.count(prompt_id) == 1, "it ran once"
    assert len(lost.sends) == 2, "its one send, and the marker's"
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded" and job.duplicates == ()
    # The end of that run told again (its channel lagging behind a probe
    # that read it): the same run, not a second one.
    assert await pool.balancer.follower.ends.ended("gpu0", prompt_id, replay=False) is None
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.duplicates == ()
    await lost.ws.close()


async def test_a_job_whose_send_timed_out_is_followed_where_a_probe_shows_it(
    make_pool: PoolFactory,
) -> None:
    lost = await lost_answer(make_pool)
    pool, gpu0 = lost.pool, lost.pool.emulators["gpu0"]
    assert lost.running is not None
    ended = pool.watch("interrupted", lost.running)
    await pool.client.post("/interrupt", json={"prompt_id": lost.running})
    await asyncio.wait_for(ended.wait(), 10.0)  # gpu0 starts the one it holds
    await pool.probe()  # gpu0 shows it
    await pool.bind()
    job = await pool.balancer.store.get_job(lost.prompt_id)
    assert job is not None and job.backend == "gpu0", "followed there"
    assert len(lost.sends) == 1, "not sent again"
    gpu0.resume()
    await ran_once(lost)


async def test_a_job_whose_send_timed_out_ends_with_the_run_its_backend_took(
    make_pool: PoolFactory,
) -> None:
    """No probe shows the job on gpu0 before its run there ends: that end
    is the job's end, and its client is sent it."""
    lost = await lost_answer(make_pool)
    pool = lost.pool
    pool.emulators["gpu0"].resume()
    await pool.done(lost.prompt_id)
    job = await pool.balancer.store.get_job(lost.prompt_id)
    assert job is not None and job.backend == "gpu0" and job.state == "succeeded"
    await ran_once(lost)


async def test_a_prompt_whose_send_at_once_timed_out_is_accepted_and_runs_once(
    make_pool: PoolFactory,
) -> None:
    """A prompt sent at once whose answer never came (gpu0 queued it): the
    client is told it is accepted (a 502 hid a run it never saw, and its
    retry ran the prompt again), and it runs once, followed on gpu0."""
    held = HeldAnswer("POST", "/prompt")
    routing = RoutingSettings(failover_grace=60.0)
    probe = ProbeSettings(unhealthy_after=1)
    pool = await make_pool(1, probe=probe, routing=routing, middlewares=(held.middleware(),))
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()
    ws = await pool.client.ws_connect("/ws?clientId=c")
    sends = pool.stalls.deadlines(str(pool.servers["gpu0"].make_url("/prompt")))
    held.armed = True
    body = {"prompt": colored(2), "client_id": "c"}
    posting = asyncio.ensure_future(pool.client.post("/prompt", json=body))
    try:
        await asyncio.wait_for(held.served.wait(), 10.0)  # gpu0 has it; no answer yet
        sends[0].reschedule(asyncio.get_running_loop().time())  # the send times out
        resp = await asyncio.wait_for(posting, 10.0)
        assert resp.status == 200, await resp.text()
    finally:
        held.release.set()
    answer = await resp.json()
    prompt_id = answer["prompt_id"]
    assert answer["number"] == 1 and answer["node_errors"] == {}
    await pool.probe()  # gpu0 shows it: followed there
    await pool.bind()
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.backend == "gpu0" and len(sends) == 1, "not sent again"
    gpu0.resume()
    await ran_once(LostAnswer(pool, ws, prompt_id, sends))
