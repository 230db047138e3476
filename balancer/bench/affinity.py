"""`comfyui-balancer bench affinity`: model residency routing on emulated GPUs.

4 emulated backends, 4 checkpoints (a load costs 2 s, a job 1 s, at most 2
models resident per backend), a skewed model mix and Poisson arrivals at 70 %
of capacity; the same seeded trace for each policy, each on a fresh pool.
Reports mean and p99 latency (submit to completion) and model loads per 100
jobs, with least_loaded as the reference in the same run; then the same on a
one-model trace. Emulated seconds run `--time-scale` times faster. With
`--repeat N` every run is repeated N times, interleaved, and a summary sets
each policy's run-to-run range beside least_loaded's own spread (the noise).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from balancer.app import create_app
from balancer.bench.affinity_report import Row, noise_line, render, summary
from balancer.config.backend_settings import BackendSettings, ProbeSettings
from balancer.config.routing_settings import RoutingPolicy, RoutingSettings
from balancer.config.settings import Settings
from balancer.config.storage_settings import StoreSettings
from balancer.emulator import EMULATOR, Emulator, EmulatorOptions, create_emulator_app
from balancer.jobs.events import JobEvent
from balancer.proxy.context import BALANCER
from balancer.runner import Running, run, start, stop_all

MODELS = tuple(f"model-{c}.safetensors" for c in "abcd")
SKEW = (0.55, 0.25, 0.12, 0.08)  # the model mix: a popular one, a long tail
POLICIES: tuple[RoutingPolicy, ...] = ("least_loaded", "expected_finish", "model_affinity")
ONE_MODEL_POLICIES: tuple[RoutingPolicy, ...] = ("least_loaded", "model_affinity")
STEPS = 20  # x 0.05 s per step: a 1 s job
LOAD_TIME = 2.0
SLOTS = 2
MIXED_JOBS = 500
RETRY_AFTER = 0.1  # seconds before a submission refused with 503 is sent again


def trace(jobs: int, rate: float, weights: tuple[float, ...], seed: int) -> list[tuple[float, str]]:
    """(arrival offset, checkpoint) per job: Poisson arrivals, weighted models."""
    rng = random.Random(seed)
    at, out = 0.0, []
    for _ in range(jobs):
        at += rng.expovariate(rate)
        out.append((at, rng.choices(MODELS[: len(weights)], weights)[0]))
    return out


def prompt(checkpoint: str, seed: int) -> dict[str, Any]:
    def node(class_type: str, **inputs: Any) -> dict[str, Any]:
        return {"class_type": class_type, "inputs": inputs}

    return {
        "4": node("CheckpointLoaderSimple", ckpt_name=checkpoint),
        "5": node("EmptyLatentImage", width=64, height=64, batch_size=1),
        "6": node("CLIPTextEncode", text="a lighthouse", clip=["4", 1]),
        "7": node("CLIPTextEncode", text="blurry", clip=["4", 1]),
        "3": node(
            "KSampler",
            seed=seed,
            steps=STEPS,
            cfg=7.0,
            sampler_name="euler",
            scheduler="normal",
            denoise=1.0,
            model=["4", 0],
            positive=["6", 0],
            negative=["7", 0],
            latent_image=["5", 0],
        ),
        "8": node("VAEDecode", samples=["3", 0], vae=["4", 2]),
        "9": node("SaveImage", filename_prefix="bench", images=["8", 0]),
    }


class Ends:
    """Completion times of jobs, from the balancer's job events."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.at: dict[str, float] = {}
        self.all_done = asyncio.Event()
        self.expected = 0

    async def job_event(self, event: JobEvent) -> None:
        if event.phase in ("completed", "failed"):
            self.at[event.prompt_id] = self.loop.time()
            if len(self.at) >= self.expected:
                self.all_done.set()


@dataclass
class Pool:
    running: list[Running]  # the balancer first
    app: Any
    emulators: list[Emulator]


async def pool(
    root: Path, scale: float, policy: RoutingPolicy, models: tuple[tuple[str, ...], ...]
) -> Pool:
    """4 emulated backends (backend i offers `models[i]`) and the balancer."""
    running: list[Running] = []
    emulators: list[Emulator] = []
    urls = {}
    for i in range(4):
        options = EmulatorOptions(
            name=f"gpu{i}", base_dir=root / f"gpu{i}", time_scale=scale, step_time=0.05,
            checkpoints=models[i], checkpoint_load_time=LOAD_TIME, model_slots=SLOTS,
        )  # fmt: skip
        emulator_app = create_emulator_app(options)
        emulators.append(emulator_app[EMULATOR])
        served = await start(emulator_app, "127.0.0.1", 0, shutdown_timeout=1.0)
        running.append(served)
        urls[f"gpu{i}"] = served.url
    settings = Settings(
        backends=tuple(BackendSettings(name=n, url=u) for n, u in urls.items()),
        probe=ProbeSettings(interval=0.2, timeout=2.0, stale_after=2.0),
        # The operator's first guess of a load matches these GPUs (2 s
        # emulated, so LOAD_TIME x scale on the balancer's clock).
        routing=RoutingSettings(
            policy=policy, resident_models=SLOTS, model_load_estimate=LOAD_TIME * scale
        ),
        store=StoreSettings(kind="memory"),
        data_dir=str(root / "balancer"),
    )
    app = create_app(settings)
    front = await start(app, "127.0.0.1", 0, shutdown_timeout=1.0)
    return Pool([front, *running], app, emulators)


async def run_one(
    args: argparse.Namespace, name: str, jobs: list[tuple[float, str]], policy: RoutingPolicy
) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        started = await pool(Path(tmp), args.time_scale, policy, (MODELS,) * 4)
        try:
            return await drive(args, name, jobs, policy, started)
        finally:
            await stop_all(started.running)


async def drive(
    args: argparse.Namespace,
    name: str,
    jobs: list[tuple[float, str]],
    policy: str,
    started: Pool,
) -> Row:
    loop = asyncio.get_running_loop()
    url = started.running[0].url
    b = started.app[BALANCER]
    ends = Ends(loop)
    ends.expected = len(jobs)
    b.events.subscribe(ends)
    async with aiohttp.ClientSession() as http:
        await ready(http, url)
        began: dict[str, float] = {}
        retried = 0

        async def submit(i: int, model: str) -> None:
            nonlocal retried
            sent = loop.time()
            body = {"prompt": prompt(model, i), "prompt_id": f"job-{i}"}
            while not await accepted(http, url, body):
                retried += 1
                await asyncio.sleep(RETRY_AFTER)
            began[f"job-{i}"] = sent

        start_at = loop.time()
        tasks = []
        for i, (offset, model) in enumerate(jobs):
            await asyncio.sleep(max(0.0, start_at + offset * args.time_scale - loop.time()))
            tasks.append(asyncio.create_task(submit(i, model)))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(ends.all_done.wait(), 600)
    latencies = sorted((ends.at[p] - began[p]) / args.time_scale for p in began)
    loads = sum(e.memory.loads for e in started.emulators)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    mean = statistics.mean(latencies)
    return Row(name, policy, len(jobs), mean, p99, 100 * loads / len(jobs), retried=retried)


async def accepted(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> bool:
    """Submit; False on a 503 (a machine that stalled the balancer past
    probe.stale_after leaves it without fresh load data for a moment), which
    a client tries again, its latency counted from its first try."""
    async with http.post(url + "/prompt", json=body) as resp:
        if resp.status == 503:
            return False
        assert resp.status == 200, await resp.text()
        return True


async def ready(http: aiohttp.ClientSession, url: str) -> None:
    """Every backend up with its catalogue read (a prompt would get 503)."""
    for _ in range(200):
        async with http.get(url + "/balancer/status") as resp:
            rows = (await resp.json())["backends"]
        if all(r["state"] == "up" and r["nodes"] for r in rows):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the pool did not come up")


async def measure(args: argparse.Namespace) -> list[Row]:
    """`--repeat` rounds of every run; within a round the policies of a
    trace run back to back, in reverse order every other round, so a drift
    of the machine's load falls on each policy alike."""
    capacity = 4 / (STEPS * 0.05)  # jobs per emulated second, every model warm
    rate = args.load * capacity
    traces = (
        ("skewed, 4 models", trace(args.jobs, rate, SKEW, args.seed), POLICIES),
        ("one model", trace(args.jobs, rate, (1.0,), args.seed), ONE_MODEL_POLICIES),
    )
    rows = []
    for round_ in range(1, args.repeat + 1):
        for name, jobs, policies in traces:
            order = policies if round_ % 2 else policies[::-1]
            done = [await run_one(args, name, jobs, p) for p in order]
            rows += [
                replace(r, run=round_) for r in sorted(done, key=lambda r: policies.index(r.policy))
            ]
    return rows


async def mixed_run(args: argparse.Namespace) -> tuple[int, int, dict[str, int]]:
    """One model lives on 2 of 4 backends; 500 submissions, a third of them
    for it: (refused or failed with value_not_in_list, completed, jobs per backend)."""
    only_two = MODELS[1]
    models = ((MODELS[0], only_two),) * 2 + ((MODELS[0],),) * 2
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        started = await pool(Path(tmp), 0.02, "least_loaded", models)
        try:
            b = started.app[BALANCER]
            ends = Ends(asyncio.get_running_loop())
            ends.expected = MIXED_JOBS
            b.events.subscribe(ends)
            url = started.running[0].url
            bad = 0
            async with aiohttp.ClientSession() as http:
                await ready(http, url)
                for i in range(MIXED_JOBS):
                    model = only_two if rng.random() < 1 / 3 else MODELS[0]
                    body = {"prompt": prompt(model, i), "prompt_id": f"mixed-{i}"}
                    async with http.post(url + "/prompt", json=body) as resp:
                        bad += "value_not_in_list" in await resp.text()
                await asyncio.wait_for(ends.all_done.wait(), 600)
                async with http.get(url + "/history", params={"max_items": "1000"}) as resp:
                    history = await resp.json()
                bad += sum("value_not_in_list" in str(entry) for entry in history.values())
                done = sum(bool(e["status"].get("completed")) for e in history.values())
            spread = {e.options.name: len(e.history) for e in started.emulators}
            return bad, done, spread
        finally:
            await stop_all(started.running)


def run_affinity_bench(args: argparse.Namespace) -> int:
    bad, done, spread = run(mixed_run(args))
    rows = run(measure(args))
    print(
        f"bench affinity: 4 emulated backends, 4 checkpoints (load {LOAD_TIME:g} s, job 1 s,"
        f" {SLOTS} resident at most; routing.model_load_estimate"
        f" {LOAD_TIME * args.time_scale:g}s, the emulated {LOAD_TIME:g} s on the balancer's clock),"
        f" Poisson arrivals at {args.load:.0%} of capacity,"
        f" seed {args.seed}; latency in emulated seconds (time scale {args.time_scale:g});"
        f" {args.repeat} run(s) of each, interleaved"
    )
    print(render(rows))
    if args.repeat > 1:
        print(summary(rows))
        print(noise_line(rows))
    print(
        f"submissions retried after a 503 (no fresh load data while the machine stalled"
        f" the balancer): {sum(r.retried for r in rows)}"
    )
    print(
        f"mixed pool: {MODELS[1]} on gpu0 and gpu1 only, {MIXED_JOBS} submissions (a third"
        f" for it): {bad} value_not_in_list, {done} completed, jobs per backend"
        f" {', '.join(f'{n} {c}' for n, c in spread.items())}"
    )
    return 0
