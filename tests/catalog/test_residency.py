"""Model residency: remembered per backend, forgotten on /free and restarts,
load times learned; model_affinity sends a prompt where its model is."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import replace
from typing import Any

from support import Pool, PoolFactory

from balancer.catalog.needs import needs_of
from balancer.catalog.residency import Residency, main_model, model_values
from balancer.config.backend_settings import CatalogSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.config.thresholds import VramThreshold
from balancer.jobs.events import JobEvent
from balancer.ops.context import OPS
from balancer.ops.reconfigure import apply_settings

from .test_mixed_pool import FLUX, copy_on, reconnected, txt2img

SDXL = "sd_xl_base_1.0.safetensors"
SD15 = "v1-5-pruned-emaonly.safetensors"
GiB = 1024**3
# Prompt ids the tests choose (a watch is set before the prompt is sent).
NUMBERS = itertools.count(1)


def test_models_of_a_prompt_are_its_loader_inputs() -> None:
    prompt = txt2img(SDXL)
    prompt["10"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "x.safetensors"}}
    needs = needs_of(prompt)
    assert model_values(needs) == (SDXL, "x.safetensors")
    assert main_model(needs) == SDXL


async def test_load_time_is_learned_from_cold_and_warm_runs() -> None:
    r = Residency(slots=2, load_estimate=10.0)
    assert r.cold_load("gpu0", ("a",)) == 10.0
    r.dispatched("p1", "gpu0", ("a",))  # cold: no warm baseline yet, nothing learned
    await r.job_event(JobEvent("p1", "completed", "gpu0", run_time=3.0))
    assert r.cold_load("gpu0", ("a",)) == 0.0 and r.cold_load("gpu1", ("a",)) == 10.0
    for i in range(3):
        r.dispatched(f"w{i}", "gpu0", ("a",))  # warm
        await r.job_event(JobEvent(f"w{i}", "completed", "gpu0", run_time=1.0))
    r.dispatched("p2", "gpu0", ("b",))
    await r.job_event(JobEvent("p2", "completed", "gpu0", run_time=3.0))  # 2 s more than warm
    assert r.load_time("gpu0", "b") == 2.0  # the first figure replaces the guess
    r.freed("gpu0")
    r.dispatched("p2b", "gpu0", ("b",))
    await r.job_event(JobEvent("p2b", "completed", "gpu0", run_time=5.0))  # 4 s: moves it 30 %
    assert r.load_time("gpu0", "b") == 2.0 + 0.3 * (4.0 - 2.0)
    r.dispatched("p2c", "gpu0", ("a",))
    r.dispatched("p3", "gpu0", ("c",))  # a third model: "b" is the least recently used
    assert r.resident("gpu0") == ["a", "c"]
    r.freed("gpu0")
    assert r.resident("gpu0") == []


async def test_a_backend_starts_from_the_pools_load_time_and_warm_median() -> None:
    r = Residency(slots=2, load_estimate=10.0)
    for i in range(3):  # gpu0 runs warm in 1 s
        r.dispatched(f"w{i}", "gpu0", ())
        await r.job_event(JobEvent(f"w{i}", "completed", "gpu0", run_time=1.0))
    # gpu1 never ran warm: its cold run is measured against the pool's 1 s.
    r.dispatched("c1", "gpu1", ("a",))
    await r.job_event(JobEvent("c1", "completed", "gpu1", run_time=4.0))
    assert r.load_time("gpu1", "a") == 3.0
    assert r.cold_load("gpu2", ("a",)) == 3.0  # the pool's figure, not the 10 s guess
    assert r.cold_load("gpu2", ("b",)) == 3.0  # nothing known of b: any model's
    r.dispatched("c2", "gpu2", ("a",))
    await r.job_event(JobEvent("c2", "completed", "gpu2", run_time=2.0))  # 1 s: from 3 s by 30 %
    assert r.load_time("gpu2", "a") == 3.0 + 0.3 * (1.0 - 3.0)


async def run_from_start(pool: Pool, *prompts: dict[str, Any]) -> list[str]:
    """Submit `prompts` while every backend holds still (a job starts, then
    waits before its first node), let them go once the first is running, and
    wait until all ended. On virtual time the balancer's clock then moves
    only by the work the backends do: the first job's run time is exactly
    its work, however loaded the machine (a later one on the same backend
    may start before the balancer sees it start, and measure shorter)."""
    for emulator in pool.emulators.values():
        emulator.pause()
    ids = [str(uuid.UUID(int=next(NUMBERS))) for _ in prompts]
    started = pool.watch("running", ids[0])
    for prompt_id, prompt in zip(ids, prompts, strict=True):
        await pool.submit(prompt, prompt_id=prompt_id)
    await asyncio.wait_for(started.wait(), 30.0)  # only bounds a hang
    for emulator in pool.emulators.values():
        emulator.resume()
    for prompt_id in ids:
        await pool.done(prompt_id, 30.0)
    return ids


async def test_model_affinity_goes_where_the_model_is_and_free_forgets_it(
    make_pool: PoolFactory,
) -> None:
    # Loads that take time (100 ms, a job 5 ms), on virtual time: the
    # balancer learns them exactly, not as a loaded machine stretches them.
    affinity = RoutingSettings(policy="model_affinity")
    pool = await make_pool(2, routing=affinity, options={"time_scale": 0.05}, virtual_time=True)
    (first,) = await run_from_start(pool, txt2img(SDXL, 1))
    holder = await pool.owner(first)
    other = "gpu1" if holder == "gpu0" else "gpu0"
    residency = pool.balancer.residency
    assert residency.resident(holder) == [SDXL] and residency.resident(other) == []
    again = await run_from_start(pool, txt2img(SDXL, 2), txt2img(SDXL, 3))
    assert [await pool.owner(i) for i in again] == [holder, holder]  # least_loaded would rotate
    (sd15,) = await run_from_start(pool, txt2img(SD15, 4))
    sd15_holder = await pool.owner(sd15)
    later = await run_from_start(pool, txt2img(SD15, 5), txt2img(SDXL, 6))
    assert [await pool.owner(i) for i in later] == [sd15_holder, holder]
    assert pool.emulators[holder].memory.loads == (2 if sd15_holder == holder else 1)
    rows = {
        r["name"]: r for r in (await (await pool.client.get("/balancer/status")).json())["backends"]
    }
    assert rows[holder]["resident_models"][0] == SDXL  # most recently used first
    assert rows[holder]["nodes"] == len(pool.emulators[holder].catalog.class_names())

    metrics = await (await pool.client.get("/metrics")).text()
    count = f'comfyui_balancer_job_run_seconds_count{{model="{SDXL}"}} 4.0'
    assert count in metrics  # per-model figures: first, again x2, the later SDXL job

    assert (await pool.client.post("/free", json={"unload_models": True})).status == 200
    assert residency.resident(holder) == [] and residency.resident(other) == []


async def test_residency_is_forgotten_when_a_backend_restarts(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, routing=RoutingSettings(policy="model_affinity"))
    first = (await pool.submit(txt2img(SDXL, 1)))["prompt_id"]
    await pool.settle([first])
    assert pool.balancer.residency.resident("gpu0") == [SDXL]
    backend = pool.balancer.registry.get("gpu0")
    assert backend is not None
    old = backend.channel_id
    await pool.emulators["gpu0"].crash()
    await reconnected(pool, "gpu0", old)
    await pool.probe()
    assert pool.balancer.residency.resident("gpu0") == []


async def test_residency_is_forgotten_when_the_backends_vram_use_drops(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1, routing=RoutingSettings(policy="model_affinity"))
    await pool.settle([(await pool.submit(txt2img(SDXL, 1)))["prompt_id"]])
    residency = pool.balancer.residency
    await pool.probe()  # sees the loaded model's VRAM use
    assert residency.resident("gpu0") == [SDXL]
    pool.emulators["gpu0"].memory.unload()  # freed behind the balancer's back
    await pool.probe()
    assert residency.resident("gpu0") == []


async def test_residency_is_forgotten_when_free_on_drain_unloads(make_pool: PoolFactory) -> None:
    limits = {"vram_limit": VramThreshold(size=4 * GiB), "free_on_drain": True}
    pool = await make_pool(1, backend=limits, routing=RoutingSettings(policy="model_affinity"))
    await pool.settle([(await pool.submit(txt2img(SDXL, 1)))["prompt_id"]])
    residency = pool.balancer.residency
    assert residency.resident("gpu0") == [SDXL]
    await pool.probe()  # over the limit and idle: drained and freed (VRAM was still high)
    gpu0 = pool.balancer.registry.get("gpu0")
    assert gpu0 is not None and gpu0.freed
    assert residency.resident("gpu0") == []


async def test_a_job_that_leaves_before_it_ran_loaded_nothing() -> None:
    r = Residency(slots=2, load_estimate=10.0)
    r.dispatched("a1", "gpu0", ("a",))
    await r.job_event(JobEvent("a1", "running", "gpu0"))
    r.dispatched("b1", "gpu0", ("b",))
    r.dispatched("c1", "gpu0", ("c",))  # pending behind b1: "a" is taken as evicted
    assert r.resident("gpu0") == ["b", "c"]
    r.taken_back("c1")  # work stealing moved it before it ran
    assert r.resident("gpu0") == ["a", "b"]
    r.dispatched("c2", "gpu0", ("c",))
    r.dispatched("c3", "gpu0", ("c",))  # a second job for "c" behind it
    r.taken_back("c2")
    assert r.resident("gpu0") == ["b", "c"]  # c3 still loads it there
    await r.job_event(JobEvent("c3", "cancelled", "gpu0"))  # recalled while pending
    assert r.resident("gpu0") == ["a", "b"]
    await r.job_event(JobEvent("b1", "running", "gpu0"))
    await r.job_event(JobEvent("b1", "retried", "gpu0"))  # lost after it started: it loaded
    assert r.resident("gpu0") == ["a", "b"]
    r.dispatched("d1", "gpu0", ("d",))
    await r.job_event(JobEvent("d1", "retried", "gpu0"))  # lost while pending
    assert r.resident("gpu0") == ["a", "b"]


async def test_a_stolen_job_leaves_its_models_off_the_backend_it_left(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2)
    busy, other = pool.emulators["gpu0"], pool.emulators["gpu1"]
    busy.pause()
    other.pause()
    first = "runs-and-holds"
    started = pool.watch("running", first)
    await pool.submit(txt2img(SDXL, 1), prompt_id=first)
    models = (SDXL, SD15, SDXL)
    ids = [(await pool.submit(txt2img(m, s)))["prompt_id"] for s, m in enumerate(models, 2)]
    assert [await pool.owner(i) for i in [first, *ids]] == ["gpu0", "gpu1", "gpu0", "gpu1"]
    residency = pool.balancer.residency
    assert residency.resident("gpu0") == [SDXL, SD15]
    await asyncio.wait_for(started.wait(), 5.0)
    other.resume()  # gpu1 finishes its two, goes idle and takes SD15 from gpu0
    await pool.settle([ids[0], ids[2], ids[1]])
    assert await pool.owner(ids[1]) == "gpu1"
    assert residency.resident("gpu0") == [SDXL]  # SD15 never ran there
    assert residency.resident("gpu1") == [SDXL, SD15]
    busy.resume()
    await pool.settle([first])


async def test_a_reload_changes_resident_models_and_catalog_refresh_at_once(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    b = pool.balancer
    ids = [(await pool.submit(txt2img(m, s)))["prompt_id"] for s, m in enumerate((SDXL, SD15))]
    await pool.settle(ids)
    assert b.residency.resident("gpu0") == [SDXL, SD15]
    routing = replace(b.settings.routing, resident_models=1)
    new = replace(b.settings, routing=routing, catalog=CatalogSettings(refresh=30.0))
    await apply_settings(b, pool.client.app[OPS].members, new)  # type: ignore[index]
    assert b.residency.resident("gpu0") == [SD15]
    copy_on(pool, "gpu0", (SDXL, SD15, FLUX))
    pool.clock.advance(30.0)
    await pool.probe()  # read again after the new 30 s, not the old 10 min
    assert FLUX in await (await pool.client.get("/models/checkpoints")).json()


def test_model_affinity_waits_behind_a_warm_backend_rather_than_load_cold() -> None:
    from scheduling.test_picker import cand

    from balancer.scheduling import Chosen, Picker
    from balancer.scheduling.scores import model_affinity

    picker = Picker(score=model_affinity)
    warm_busy = cand("warm", 0, 1, job_time=1.0)
    cold_idle = cand("cold", 1, 0, cold_load=10.0)
    assert picker.pick([warm_busy, cold_idle]) == Chosen("warm")
    cheap_load = cand("cold", 1, 0, cold_load=0.5)
    assert picker.pick([warm_busy, cheap_load]) == Chosen("cold")
