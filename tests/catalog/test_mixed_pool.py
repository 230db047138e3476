"""Mixed pools: each prompt goes to a backend that has its nodes and models;
a prompt nobody can run is a 400 naming what is missing; catalogues are read
again on reconnect and on an admin refresh."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from aiohttp import web
from support import Pool, PoolFactory, workflow

from balancer.config.backend_settings import CatalogSettings
from balancer.emulator import EMULATOR

FLUX = "flux1-dev.safetensors"
SDXL = "sd_xl_base_1.0.safetensors"


def txt2img(checkpoint: str, seed: int = 1) -> dict[str, Any]:
    wf = workflow("txt2img")
    wf["4"]["inputs"]["ckpt_name"] = checkpoint
    wf["5"]["inputs"].update(width=64, height=64)
    wf["3"]["inputs"].update(steps=1, seed=seed)
    return wf


async def flux_on_gpu2(make_pool: PoolFactory, count: int = 3) -> Pool:
    return await make_pool(count, options_for={"gpu2": {"checkpoints": (SDXL, FLUX)}})


async def test_a_prompt_goes_to_the_only_backend_with_its_model(make_pool: PoolFactory) -> None:
    pool = await flux_on_gpu2(make_pool)
    ids = [(await pool.submit(txt2img(FLUX, seed)))["prompt_id"] for seed in range(3)]
    others = [(await pool.submit(txt2img(SDXL, seed)))["prompt_id"] for seed in range(4)]
    await pool.settle(ids + others)
    assert {await pool.owner(i) for i in ids} == {"gpu2"}
    assert all(pool.emulators["gpu2"].history[i]["status"]["completed"] for i in ids)
    assert {"gpu0", "gpu1"} <= {await pool.owner(i) for i in others}  # the rest still spreads


async def test_nobody_offers_it_is_a_400_naming_each_node_input_and_value(
    make_pool: PoolFactory,
) -> None:
    pool = await flux_on_gpu2(make_pool)
    prompt = txt2img("nowhere.safetensors")
    prompt["8"]["class_type"] = "TiledVAEDecodeX"
    resp = await pool.client.post("/prompt", json={"prompt": prompt})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert set(body["node_errors"]) == {"4", "8"}
    (value,) = body["node_errors"]["4"]["errors"]
    assert value["type"] == "value_not_in_list"
    assert value["extra_info"] == {
        "input_name": "ckpt_name",
        "received_value": "nowhere.safetensors",
    }
    assert body["node_errors"]["8"]["errors"][0]["type"] == "missing_node_type"
    assert "TiledVAEDecodeX" in body["error"]["details"]
    assert all(emu.executed == [] for emu in pool.emulators.values())


async def test_capable_backends_draining_is_a_503_naming_the_capable_set(
    make_pool: PoolFactory,
) -> None:
    pool = await flux_on_gpu2(make_pool)
    assert (await pool.client.post("/balancer/backends/gpu2/drain")).status == 200
    resp = await pool.client.post("/prompt", json={"prompt": txt2img(FLUX)})
    assert resp.status == 503
    assert (await resp.json())["error"]["details"] == "capable_all_draining"
    assert (await pool.client.post("/prompt", json={"prompt": txt2img(SDXL)})).status == 200


async def test_a_model_only_a_removed_backend_had_is_a_400(make_pool: PoolFactory) -> None:
    pool = await flux_on_gpu2(make_pool)
    assert (await pool.client.delete("/balancer/backends/gpu2")).status == 202
    await pool.probe()  # idle: it leaves the pool
    assert pool.balancer.registry.get("gpu2") is None
    resp = await pool.client.post("/prompt", json={"prompt": txt2img(FLUX)})
    assert resp.status == 400
    (error,) = (await resp.json())["node_errors"]["4"]["errors"]
    assert error["type"] == "value_not_in_list"


def copy_on(pool: Pool, name: str, checkpoints: tuple[str, ...]) -> None:
    """Model files copied onto a running backend: it lists them from now on."""
    emulator = pool.emulators[name]
    emulator.catalog = type(emulator.catalog)(
        emulator.dirs.folder("input"), replace(emulator.options, checkpoints=checkpoints)
    )


async def test_catalogues_are_read_again_every_catalog_refresh(make_pool: PoolFactory) -> None:
    refresh = {"catalog": CatalogSettings(refresh=60.0)}
    pool = await make_pool(
        2, options_for={"gpu0": {"checkpoints": (FLUX,)}}, settings_overrides=refresh
    )
    copy_on(pool, "gpu1", (SDXL, FLUX))
    pool.emulators["gpu0"].pause()
    ids = [(await pool.submit(txt2img(FLUX, 1)))["prompt_id"]]
    pool.clock.advance(59.0)
    await pool.probe()
    ids.append((await pool.submit(txt2img(FLUX, 2)))["prompt_id"])
    assert [await pool.owner(i) for i in ids] == ["gpu0", "gpu0"]  # gpu1 not read again yet
    pool.clock.advance(1.0)
    await pool.probe()  # a minute since the last read: gpu1's catalogue is read again
    ids.append((await pool.submit(txt2img(FLUX, 3)))["prompt_id"])
    assert await pool.owner(ids[2]) == "gpu1"  # gpu0 is full; gpu1 lists FLUX now
    pool.emulators["gpu0"].resume()
    await pool.settle(ids)


async def test_a_failed_catalogue_read_is_tried_again_soon(make_pool: PoolFactory) -> None:
    failing = {"gpu1"}

    @web.middleware
    async def object_info_fails(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/object_info" and request.app[EMULATOR].options.name in failing:
            return web.Response(status=500)
        return await handler(request)

    pool = await make_pool(2, middlewares=(object_info_fails,))

    async def nodes() -> dict[str, int | None]:
        status = await (await pool.client.get("/balancer/status")).json()
        return {row["name"]: row["nodes"] for row in status["backends"]}

    assert (await nodes())["gpu1"] is None  # never read: not eligible
    failing.clear()  # a passing error, not a 10-minute one
    pool.clock.advance(5.0)
    await pool.probe()
    assert (await nodes())["gpu1"] == len(pool.emulators["gpu1"].catalog.class_names())


async def reconnected(pool: Pool, name: str, old: str | None) -> None:
    backend = pool.balancer.registry.get(name)
    assert backend is not None

    async def new_channel() -> None:
        while backend.channel_id in (None, old):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(new_channel(), 30.0)  # bounds a hang: reconnects back off


async def test_a_catalogue_is_read_again_when_the_channel_reconnects(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2, options_for={"gpu0": {"checkpoints": (FLUX,)}})
    gpu1 = pool.emulators["gpu1"]
    pool.emulators["gpu0"].pause()
    first = (await pool.submit(txt2img(FLUX, 1)))["prompt_id"]
    assert await pool.owner(first) == "gpu0"
    old = pool.balancer.registry.get("gpu1").channel_id  # type: ignore[union-attr]
    await gpu1.restart_with(replace(gpu1.options, checkpoints=(FLUX,)))  # FLUX copied on
    await reconnected(pool, "gpu1", old)
    await pool.probe()
    second = (await pool.submit(txt2img(FLUX, 2)))["prompt_id"]
    assert await pool.owner(second) == "gpu1"  # gpu0 is busy; gpu1 has it now
    pool.emulators["gpu0"].resume()
    await pool.settle([first, second])


async def test_an_admin_refresh_reads_a_catalogue_now(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, options_for={"gpu0": {"checkpoints": (FLUX,)}})
    copy_on(pool, "gpu1", (FLUX,))
    pool.emulators["gpu0"].pause()
    first = (await pool.submit(txt2img(FLUX, 1)))["prompt_id"]
    assert await pool.owner(first) == "gpu0"
    resp = await pool.client.post("/balancer/backends/gpu1/refresh")
    assert resp.status == 200
    assert (await resp.json())["models"]["checkpoints"] == 1
    second = (await pool.submit(txt2img(FLUX, 2)))["prompt_id"]
    assert await pool.owner(second) == "gpu1"
    assert (await pool.client.post("/balancer/backends/nope/refresh")).status == 404
    pool.emulators["gpu0"].resume()
    await pool.settle([first, second])
