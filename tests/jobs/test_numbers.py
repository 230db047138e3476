"""The pool owns `number` (issue 11, defect 3): strictly increasing across
backends and restarts, the same in every answer, and `front` still jumps."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from store_support import Reopen
from support import Pool, PoolFactory, colored

from balancer.app import create_app


async def numbers_shown(pool: Pool, ids: list[str]) -> dict[str, dict[str, Any]]:
    queue = await (await pool.client.get("/queue")).json()
    items = queue["queue_running"] + queue["queue_pending"]
    in_queue = {item[1]: item[0] for item in items}
    jobs = {i: (await (await pool.client.get(f"/api/jobs/{i}")).json())["priority"] for i in ids}
    return {"queue": in_queue, "jobs": jobs}


async def test_numbers_rise_across_backends_and_agree_everywhere(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    for emulator in pool.emulators.values():
        emulator.pause()
    answers = [await pool.submit(colored(i)) for i in range(6)]
    numbers = [a["number"] for a in answers]
    assert numbers == sorted(set(numbers)) and all(isinstance(n, int) for n in numbers)
    ids = [a["prompt_id"] for a in answers]
    assert {await pool.owner(i) for i in ids[:4]} == {"gpu0", "gpu1"}, "both backends took some"
    shown = await numbers_shown(pool, ids)
    expected = dict(zip(ids, numbers, strict=True))
    assert shown["queue"] == expected and shown["jobs"] == expected
    front = await pool.submit(colored(9), front=True)
    assert front["number"] < min(numbers), "front jumps ahead, as in ComfyUI"
    for emulator in pool.emulators.values():
        emulator.resume()
    await pool.settle([*ids, front["prompt_id"]])
    history = await (await pool.client.get("/history")).json()
    assert {i: history[i]["prompt"][0] for i in ids} == expected
    single = await (await pool.client.get(f"/history/{ids[5]}")).json()
    assert single[ids[5]]["prompt"][0] == numbers[5]


async def test_numbers_go_on_rising_after_a_restart(
    make_pool: PoolFactory, aiohttp_client: Any, reopen_store: Reopen
) -> None:
    pool = await make_pool(1)

    async def start() -> TestClient:  # type: ignore[type-arg]
        store = await reopen_store()  # a restart: the same data, opened again
        app = create_app(
            pool.balancer.settings,
            clock=pool.clock,
            run_prober=False,
            store=store,
            deadline=pool.stalls,
        )
        client: TestClient = await aiohttp_client(app)  # type: ignore[type-arg]
        balancer = Pool(client, pool.emulators, pool.servers, pool.clock, pool.stalls)
        await balancer.channels_up(["gpu0"])
        await balancer.probe()
        return client

    client = await start()
    first = [
        (await (await client.post("/prompt", json={"prompt": colored(i)})).json()) for i in range(3)
    ]
    await client.close()
    client = await start()
    again = await (await client.post("/prompt", json={"prompt": colored(7)})).json()
    await client.close()
    assert again["number"] > max(a["number"] for a in first)
