"""Backend answers the balancer keeps until that backend may have changed them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from support import HANG_BOUND, HeldAnswer, Pool, PoolFactory, colored

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Reads:
    """Counts the GETs each backend receives, by path."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET":
            self.counts[request.path] = self.counts.get(request.path, 0) + 1
        return await handler(request)


async def pool_with_reads(make_pool: PoolFactory, count: int) -> tuple[Pool, Reads]:
    reads = Reads()
    pool = await make_pool(count, middlewares=(reads.middleware,))
    return pool, reads


async def queue_ids(pool: Pool) -> set[str]:
    queue = await (await pool.client.get("/queue")).json()
    return {item[1] for item in queue["queue_running"] + queue["queue_pending"]}


async def test_an_unchanged_queue_is_answered_without_asking_the_backends_again(
    make_pool: PoolFactory,
) -> None:
    pool, reads = await pool_with_reads(make_pool, 2)
    before = reads.counts.get("/queue", 0)
    answers = [await (await pool.client.get("/queue")).json() for _ in range(5)]
    assert all(a == answers[0] for a in answers)
    assert reads.counts["/queue"] - before == 2, "one read per backend for five client reads"


async def test_a_prompt_sent_straight_to_a_backend_shows_once_its_status_push_arrives(
    make_pool: PoolFactory,
) -> None:
    pool, _ = await pool_with_reads(make_pool, 1)
    pool.emulators["gpu0"].pause()
    assert await queue_ids(pool) == set()  # kept from here on
    ws = await pool.client.ws_connect("/ws?clientId=watcher")
    await ws.receive()  # the first status: nothing queued
    direct = str(pool.servers["gpu0"].make_url("/prompt"))
    async with (
        aiohttp.ClientSession() as session,
        session.post(direct, json={"prompt": colored(1)}) as resp,
    ):
        prompt_id = (await resp.json())["prompt_id"]
    status = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
    assert status["data"]["status"]["exec_info"]["queue_remaining"] == 1
    assert await queue_ids(pool) == {prompt_id}
    await ws.close()


async def test_a_change_made_through_the_balancer_shows_at_once(make_pool: PoolFactory) -> None:
    pool, _ = await pool_with_reads(make_pool, 1)
    pool.emulators["gpu0"].pause()
    assert await queue_ids(pool) == set()
    first = (await pool.submit(colored(1)))["prompt_id"]
    assert await queue_ids(pool) == {first}, "its own dispatch is seen before the push"
    second = (await pool.submit(colored(2)))["prompt_id"]
    assert await queue_ids(pool) == {first, second}
    resp = await pool.client.post("/queue", json={"delete": [second]})
    assert resp.status == 200
    assert second not in await queue_ids(pool)


async def test_a_read_after_a_prompt_is_not_given_an_answer_asked_before_it(
    make_pool: PoolFactory,
) -> None:
    """Read-your-writes: a client that posts a prompt and then reads /queue
    sees it, even while a /queue read asked before the prompt is still out
    (concurrent reads share one round only while nothing changed)."""
    held = HeldAnswer("GET", "/queue")
    pool = await make_pool(1, middlewares=(held.middleware(),))
    pool.emulators["gpu0"].pause()
    held.armed = True
    before = asyncio.ensure_future(queue_ids(pool))
    try:
        await asyncio.wait_for(held.served.wait(), HANG_BOUND)  # asked, answer held
        prompt_id = (await pool.submit(colored(1)))["prompt_id"]
        after = await asyncio.wait_for(queue_ids(pool), HANG_BOUND)
    finally:
        held.release.set()
    assert after == {prompt_id}
    assert await before == set(), "the read asked before the prompt got its own answer"


async def test_a_history_delete_through_the_balancer_shows_at_once(make_pool: PoolFactory) -> None:
    """ComfyUI pushes no status for a history delete: the balancer's own
    request is what makes it drop the answers it kept."""
    pool, _ = await pool_with_reads(make_pool, 1)
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    await pool.done(prompt_id)
    assert prompt_id in await (await pool.client.get("/history")).json()
    resp = await pool.client.post("/history", json={"delete": [prompt_id]})
    assert resp.status == 200
    assert prompt_id not in await (await pool.client.get("/history")).json()


async def test_a_change_that_pushes_nothing_shows_after_the_probe_interval(
    make_pool: PoolFactory,
) -> None:
    """A history delete sent to a backend directly pushes no status: the kept
    answer is given until it is `probe.interval` old."""
    pool, _ = await pool_with_reads(make_pool, 1)
    async with aiohttp.ClientSession() as session:
        direct = str(pool.servers["gpu0"].make_url(""))
        async with session.post(direct + "/prompt", json={"prompt": colored(1)}) as resp:
            prompt_id = (await resp.json())["prompt_id"]
        await pool.wait_idle()
        await pool.probe()  # sees the push of its end
        history = await (await pool.client.get("/history")).json()
        assert prompt_id in history
        async with session.post(direct + "/history", json={"delete": [prompt_id]}) as resp:
            assert resp.status == 200
    assert prompt_id in await (await pool.client.get("/history")).json(), "kept"
    pool.clock.advance(pool.balancer.settings.probe.interval)
    assert prompt_id not in await (await pool.client.get("/history")).json()


async def test_nothing_is_kept_while_a_backends_channel_is_down(make_pool: PoolFactory) -> None:
    pool, reads = await pool_with_reads(make_pool, 1)
    await pool.balancer.channels.stop("gpu0")
    assert pool.balancer.registry.get("gpu0").channel_id is None  # type: ignore[union-attr]
    before = reads.counts.get("/queue", 0)
    for _ in range(3):
        await pool.client.get("/queue")
    assert reads.counts["/queue"] - before == 3


async def test_a_job_on_its_way_from_the_balancer_queue_to_a_backend_is_listed(
    make_pool: PoolFactory,
) -> None:
    """A prompt that waited in the balancer is listed by /queue while it is
    being sent (no longer waiting here, not yet on the backend)."""
    held = HeldAnswer("POST", "/prompt", before=True)
    pool = await make_pool(1, middlewares=(held.middleware(),))
    pool.emulators["gpu0"].pause()
    running = (await pool.submit(colored(0)))["prompt_id"]
    second = (await pool.submit(colored(1)))["prompt_id"]
    third = (await pool.submit(colored(2)))["prompt_id"]
    assert len(pool.balancer.jobs.queue) == 1, "the third waits in the balancer"
    assert await queue_ids(pool) == {running, second, third}
    held.armed = True
    try:
        cancel = await pool.client.post(f"/api/jobs/{second}/cancel")  # room on gpu0
        assert cancel.status == 200
        await asyncio.wait_for(held.served.wait(), HANG_BOUND)  # on its way, not there
        assert not pool.balancer.jobs.queue
        assert await queue_ids(pool) == {running, third}
    finally:
        held.release.set()


async def test_a_job_taken_out_of_the_balancer_queue_is_no_longer_listed(
    make_pool: PoolFactory,
) -> None:
    """The backends' part of /queue is built once per set of answers: the
    jobs waiting in the balancer, added to one answer, are not in the next."""
    pool, reads = await pool_with_reads(make_pool, 1)
    pool.emulators["gpu0"].pause()
    running = (await pool.submit(colored(0)))["prompt_id"]
    pending = (await pool.submit(colored(1)))["prompt_id"]
    waiting = (await pool.submit(colored(2)))["prompt_id"]
    assert await queue_ids(pool) == {running, pending, waiting}
    asked = reads.counts["/queue"]
    resp = await pool.client.post(f"/api/jobs/{waiting}/cancel")
    assert resp.status == 200
    queue = await (await pool.client.get("/queue")).json()
    assert [item[1] for item in queue["queue_pending"]] == [pending]
    assert [item[1] for item in queue["queue_running"]] == [running]
    assert reads.counts["/queue"] == asked, "the backend's answer was kept"
