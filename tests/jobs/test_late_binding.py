"""The balancer queue: late binding, ordering, bounds, late validation errors."""

from __future__ import annotations

import asyncio
from typing import Any

from support import HANG_BOUND, HeldAnswer, PoolFactory, colored, workflow

from balancer.config.routing_settings import RoutingSettings


async def test_prompts_beyond_a_backends_room_wait_in_the_balancer(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    answers = [await pool.submit(colored(i)) for i in range(5)]
    assert [a["node_errors"] for a in answers] == [{}] * 5
    assert len(pool.balancer.jobs.queue) == 3, "one running + one pending on the backend"
    await pool.probe()
    queue = await (await pool.client.get("/queue")).json()
    assert len(queue["queue_running"]) == 1 and len(queue["queue_pending"]) == 4
    assert {item[1] for item in queue["queue_pending"]} >= {a["prompt_id"] for a in answers[2:]}
    remaining = await (await pool.client.get("/prompt")).json()
    assert remaining["exec_info"]["queue_remaining"] == 5
    emulator.resume()
    ids = [a["prompt_id"] for a in answers]
    await pool.settle(ids)
    assert sorted(emulator.executed) == sorted(ids), "every job ran exactly once"


async def test_waiting_jobs_run_in_comfyui_order_and_front_jumps_ahead(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    first = [(await pool.submit(colored(i)))["prompt_id"] for i in range(4)]
    urgent = (await pool.submit(colored(9), front=True))["prompt_id"]
    emulator.resume()
    await pool.settle([*first, urgent])
    assert emulator.executed == [first[0], first[1], urgent, first[2], first[3]]


async def test_waiting_jobs_can_be_deleted_and_cleared(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(6)]
    await pool.client.post("/queue", json={"delete": [ids[2]]})
    cancel = await pool.client.post(f"/api/jobs/{ids[3]}/cancel")
    assert await cancel.json() == {"cancelled": True}
    assert [j.prompt_id for j in pool.balancer.jobs.queue] == ids[4:]
    await pool.client.post("/queue", json={"clear": True})
    assert len(pool.balancer.jobs.queue) == 0
    emulator.resume()
    await pool.settle(ids[:1])
    assert ids[2] not in emulator.executed and ids[5] not in emulator.executed


async def test_a_full_queue_answers_429_with_retry_after(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, routing=RoutingSettings(max_queue=2))
    pool.emulators["gpu0"].pause()
    for i in range(4):
        await pool.submit(colored(i))
    resp = await pool.client.post("/prompt", json={"prompt": colored(99)})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["error"]["type"] == "queue_full" and body["node_errors"] == {}


async def test_a_late_validation_error_fails_the_job_visibly(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    pool.emulators["gpu0"].pause()
    for i in range(2):
        await pool.submit(colored(i))
    bad: dict[str, Any] = workflow("fast")
    bad["1"]["inputs"]["width"] = 0
    ws = await pool.client.ws_connect("/ws?clientId=late")
    await ws.receive()  # status
    answer = await pool.submit(bad, client_id="late")
    assert answer["node_errors"] == {}, "accepted while waiting: validated later"
    pool.emulators["gpu0"].resume()
    await pool.settle([answer["prompt_id"]])
    entry = (await (await pool.client.get(f"/history/{answer['prompt_id']}")).json())[
        answer["prompt_id"]
    ]
    assert entry["status"]["status_str"] == "error"
    error = entry["status"]["messages"][-1][1]
    assert error["exception_type"] == "prompt_outputs_failed_validation"
    assert error["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"
    seen = []
    while not seen or seen[-1] != ("executing", None):
        msg = await ws.receive_json(timeout=HANG_BOUND)
        if msg["type"] in ("execution_error", "executing"):
            seen.append((msg["type"], msg["data"].get("node", "-")))
    assert seen[-2:] == [("execution_error", "-"), ("executing", None)]


async def test_send_at_once_when_unbounded(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, routing=RoutingSettings(max_pending_per_backend=None))
    pool.emulators["gpu0"].pause()
    for i in range(5):
        await pool.submit(colored(i))
    assert len(pool.balancer.jobs.queue) == 0


async def test_a_job_pending_behind_a_busy_gpu_moves_to_one_that_went_idle(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2)
    busy, other = pool.emulators["gpu0"], pool.emulators["gpu1"]
    busy.pause()
    other.pause()
    first = "runs-and-holds"
    started = pool.watch("running", first)
    await pool.submit(colored(1), prompt_id=first)
    ids = [(await pool.submit(colored(i)))["prompt_id"] for i in range(2, 5)]
    assert [await pool.owner(i) for i in [first, *ids]] == ["gpu0", "gpu1", "gpu0", "gpu1"]
    behind = ids[1]  # pending on gpu0 behind `first`, which runs and holds
    await asyncio.wait_for(started.wait(), HANG_BOUND)
    other.resume()  # gpu1 finishes its two and goes idle
    await pool.settle([ids[0], ids[2], behind])
    assert await pool.owner(behind) == "gpu1"
    assert behind in other.executed and behind not in busy.executed
    busy.resume()
    await pool.settle([first])
    assert sorted(busy.executed + other.executed) == sorted([first, *ids]), "each ran once"


async def test_a_backend_slow_to_answer_a_send_holds_up_no_other_backend(
    make_pool: PoolFactory,
) -> None:
    """A job is sent to gpu A, which queues it but does not answer yet:
    meanwhile gpu B frees up, and the job waiting behind is sent there and
    runs, without waiting for A's answer."""
    held = HeldAnswer("POST", "/prompt")
    routing = RoutingSettings(max_pending_per_backend=0)  # one job per backend
    pool = await make_pool(2, routing=routing, middlewares=(held.middleware(),))
    for emulator in pool.emulators.values():
        emulator.pause()
    first, second, third, fourth = [(await pool.submit(colored(i)))["prompt_id"] for i in range(4)]
    a, b = await pool.owner(first), await pool.owner(second)
    assert {a, b} == {"gpu0", "gpu1"} and len(pool.balancer.jobs.queue) == 2
    held.armed = True
    try:
        pool.emulators[a].resume()  # `first` ends: `third` is sent to A, which holds its answer
        await asyncio.wait_for(held.served.wait(), HANG_BOUND)
        pool.emulators[b].resume()  # `second` ends: room on B for `fourth`
        await pool.done(fourth)  # A's answer is still held
        assert await pool.owner(fourth) == b
    finally:
        held.release.set()
    await pool.settle([first, second, third, fourth])
    assert sorted(pool.emulators[a].executed) == sorted([first, third])
