"""A backend tells a job's start as soon as it queues the prompt, which can
be before the balancer has read its answer to the send (the job is then
still being dispatched): the start is recorded once the send lands, so the
job shows running while it runs, and its end is recorded once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from store_support import Reopen
from support import HANG_BOUND, HeldAnswer, PoolFactory, colored

EVERY_KIND = pytest.mark.parametrize("reopen_store", ["memory", "sqlite", "redis"], indirect=True)


async def next_frame(ws: Any, type_: str) -> dict[str, Any]:
    """The data of the next `type_` frame on a client socket."""
    while True:
        msg = await ws.receive_json(timeout=HANG_BOUND)
        if msg["type"] == type_:
            data: dict[str, Any] = msg["data"]
            return data


class Phases:
    """The job events seen, in order, as (phase, prompt_id)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def job_event(self, event: Any) -> None:
        self.seen.append((event.phase, event.prompt_id))

    def of(self, prompt_id: str) -> list[str]:
        return [phase for phase, each in self.seen if each == prompt_id]


@EVERY_KIND
async def test_a_start_told_before_the_send_is_answered_shows_the_job_running(
    make_pool: PoolFactory, reopen_store: Reopen
) -> None:
    held = HeldAnswer("POST", "/prompt")
    pool = await make_pool(1, middlewares=(held.middleware(),), store=await reopen_store())
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()  # it starts the job, then holds it before its first node
    phases = Phases()
    pool.balancer.events.subscribe(phases)
    ws = await pool.client.ws_connect("/ws?clientId=c")
    held.armed = True  # gpu0 queues the prompt; its answer is held
    body = {"prompt": colored(1), "client_id": "c"}
    sending = asyncio.ensure_future(pool.client.post("/prompt", json=body))
    try:
        start = await next_frame(ws, "execution_start")  # relayed by the balancer
        prompt_id = start["prompt_id"]
        job = await pool.balancer.store.get_job(prompt_id)
        assert job is not None and job.state == "dispatching", "the send is not answered yet"
    finally:
        held.release.set()
    answer = await sending
    assert answer.status == 200 and (await answer.json())["prompt_id"] == prompt_id
    detail = await (await pool.client.get(f"/api/jobs/{prompt_id}")).json()
    assert detail["status"] == "in_progress", "it runs on gpu0"
    assert "execution_start_time" in detail
    assert phases.of(prompt_id) == ["dispatched", "running"]
    gpu0.resume()
    await pool.done(prompt_id)
    assert (await next_frame(ws, "execution_success"))["prompt_id"] == prompt_id
    detail = await (await pool.client.get(f"/api/jobs/{prompt_id}")).json()
    assert detail["status"] == "completed"
    assert detail["execution_start_time"] <= detail["execution_end_time"]
    assert phases.of(prompt_id) == ["dispatched", "running", "completed"], "one end"
    job = await pool.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded" and job.duplicates == ()
    await ws.close()
