"""POST /prompt: least-loaded choice, filters, prompt_id rules, error pass-through."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from support import PoolFactory, colored, workflow

from balancer.config.routing_settings import RoutingSettings

GiB = 1024**3


async def test_each_prompt_goes_to_the_least_loaded_backend(make_pool: PoolFactory) -> None:
    pool = await make_pool(3)
    for emulator in pool.emulators.values():
        emulator.pause()
    # Load gpu0 with two jobs behind the balancer's back, then let a probe see it.
    direct = pool.servers["gpu0"].make_url("/prompt")
    for i in range(2):
        async with pool.client.session.post(direct, json={"prompt": colored(i)}) as resp:
            assert resp.status == 200
    await pool.probe()
    first = await pool.submit(colored(10))
    second = await pool.submit(colored(11))
    third = await pool.submit(colored(12))
    owners = [await pool.owner(a["prompt_id"]) for a in (first, second, third)]
    assert owners[0] in {"gpu1", "gpu2"} and owners[1] in {"gpu1", "gpu2"}
    assert owners[0] != owners[1], "dispatches the probe has not seen yet must count"
    assert owners[2] in {"gpu1", "gpu2"}, "gpu0 still has 2 queued, the others 1 each"


async def test_ties_rotate_between_equal_backends(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    owners = []
    for i in range(4):
        answer = await pool.submit(colored(i))
        await pool.wait_idle()
        await pool.probe()  # both idle again: a tie every time
        owners.append(await pool.owner(answer["prompt_id"]))
    assert owners == ["gpu0", "gpu1", "gpu0", "gpu1"]


async def test_both_path_forms_work(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    resp = await pool.client.post("/api/prompt", json={"prompt": workflow("fast")})
    assert resp.status == 200
    prompt_id = (await resp.json())["prompt_id"]
    await pool.wait_idle()
    for path in (f"/history/{prompt_id}", f"/api/history/{prompt_id}"):
        resp = await pool.client.get(path)
        assert prompt_id in await resp.json()


async def test_client_prompt_id_is_kept_and_retry_runs_nothing_twice(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2)
    body = {"prompt": colored(5), "prompt_id": "job-42.a_b"}
    first = await pool.client.post("/prompt", json=body)
    again = await pool.client.post("/prompt", json=body)
    assert first.status == again.status == 200
    assert await first.json() == await again.json()
    assert (await first.json())["prompt_id"] == "job-42.a_b"
    await pool.wait_idle()
    runs = sum(e.executed.count("job-42.a_b") for e in pool.emulators.values())
    assert runs == 1


async def test_concurrent_identical_retries_dispatch_once(make_pool: PoolFactory) -> None:
    import asyncio

    pool = await make_pool(2)
    body = {"prompt": colored(6), "prompt_id": "dup-1"}
    answers = await asyncio.gather(*(pool.client.post("/prompt", json=body) for _ in range(5)))
    bodies = [await a.json() for a in answers]
    assert all(b == bodies[0] for b in bodies)
    await pool.wait_idle()
    assert sum(e.executed.count("dup-1") for e in pool.emulators.values()) == 1


async def test_known_prompt_id_with_another_workflow_is_refused(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    await pool.submit(colored(1), prompt_id="same-id")
    resp = await pool.client.post("/prompt", json={"prompt": colored(2), "prompt_id": "same-id"})
    assert resp.status == 400
    assert (await resp.json())["error"]["type"] == "invalid_prompt_id"


async def test_unsafe_prompt_ids_get_400(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    for bad in ["../x", "a b", "x" * 129, 17, "", ".", ".."]:
        resp = await pool.client.post("/prompt", json={"prompt": colored(1), "prompt_id": bad})
        assert resp.status == 400, bad
        body = await resp.json()
        assert body["error"]["type"] == "invalid_prompt_id"
        assert body["node_errors"] == {}


async def test_missing_prompt_id_gets_a_uuid4(make_pool: PoolFactory) -> None:
    import uuid

    pool = await make_pool(1)
    answer = await pool.submit(colored(1))
    assert uuid.UUID(answer["prompt_id"]).version == 4


async def test_validation_errors_pass_through_unchanged(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    bad = workflow("fast")
    bad["1"]["inputs"]["width"] = 0
    via = await pool.client.post("/prompt", json={"prompt": bad})
    direct_url = pool.servers["gpu0"].make_url("/prompt")
    async with pool.client.session.post(direct_url, json={"prompt": bad}) as direct:
        assert via.status == direct.status == 400
        assert await via.json() == await direct.json()
    assert await pool.balancer.store.pins_of("gpu0") == [], "a refused prompt is not pinned"


async def test_malformed_json_is_400_not_500(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    cases: list[Any] = [b"{not json", b"[1, 2]", b"", json.dumps({"prompt": [1]}).encode()]
    for raw in cases:
        resp = await pool.client.post("/prompt", data=raw)
        assert resp.status == 400, raw
        body = await resp.json()
        assert set(body) == {"error", "node_errors"}
        assert set(body["error"]) == {"type", "message", "details", "extra_info"}
    resp = await pool.client.post("/prompt", json={"client_id": "x"})
    assert resp.status == 400
    assert (await resp.json())["error"]["type"] == "no_prompt"


async def test_body_over_the_limit_is_413(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    limit = pool.balancer.settings.limits.max_body
    resp = await pool.client.post("/prompt", data=b"x" * (limit + 1))
    assert resp.status == 413
    assert (await resp.json())["error"]["type"] == "request_too_large"


async def test_no_backend_up_is_503_with_retry_after(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, probe_first=False)
    resp = await pool.client.post("/prompt", json={"prompt": colored(1)})
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    body = await resp.json()
    assert body["error"]["type"] == "no_backend_available"
    assert body["error"]["details"] == "all_down"


async def test_stale_load_data_makes_backends_ineligible(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    pool.clock.advance(pool.balancer.settings.probe.stale_after + 0.1)
    resp = await pool.client.post("/prompt", json={"prompt": colored(1)})
    assert resp.status == 503
    assert (await resp.json())["error"]["details"] == "all_stale"
    await pool.probe()
    assert (await pool.client.post("/prompt", json={"prompt": colored(1)})).status == 200


async def test_vram_filter_skips_backends_without_enough_free_vram(make_pool: PoolFactory) -> None:
    pool = await make_pool(
        2,
        options={"vram_total": 24 * GiB},
        backend={"min_free_vram": 8 * GiB},
        routing=RoutingSettings(max_pending_per_backend=None),
    )
    pool.emulators["gpu0"].set_vram_used(20 * GiB)
    await pool.probe()
    owners = {await pool.owner((await pool.submit(colored(i)))["prompt_id"]) for i in range(3)}
    assert owners == {"gpu1"}
    pool.emulators["gpu1"].set_vram_used(23 * GiB)
    await pool.probe()
    resp = await pool.client.post("/prompt", json={"prompt": colored(9)})
    assert resp.status == 503
    assert (await resp.json())["error"]["details"] == "not_enough_vram"


async def test_refused_connection_moves_on_to_the_next_backend(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None
    # Its HTTP port now refuses connections; its channel and last probe say all is well.
    gpu0.settings = replace(gpu0.settings, url="http://127.0.0.1:1")
    owners = {await pool.owner((await pool.submit(colored(i)))["prompt_id"]) for i in range(2)}
    assert owners == {"gpu1"}
    assert not gpu0.healthy
