"""The workload and the open-loop load generator of `bench schedule`.

A job is EmptyLatentImage 16x16 -> KSampler (1 step short, 30 steps long)
-> VAEDecode -> SaveImage; the checkpoint loader and the prompt encoder are
the same in every job, so after a warm-up the emulator serves them from its
node cache, and every job has its own seed so the sampler never is. A job's
emulated time is then `steps x step_time` plus the emulator's simulated cost
of VAEDecode and SaveImage at 16x16 (a third of a millisecond), all times
the backend's time scale.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from balancer.bench.ideal import TraceJob
from balancer.emulator.nodes_base import NODE_OVERHEAD_S, megapixels
from balancer.emulator.nodes_image import COST_PER_MP
from balancer.emulator.nodes_sd import VAE_DECODE_S_PER_MP

SIDE = 16
SHORT_STEPS, LONG_STEPS = 1, 30
LONG_SHARE = 0.1
# Simulated seconds (time scale 1) of the nodes around the sampler.
FIXED_WORK = (
    VAE_DECODE_S_PER_MP * megapixels(SIDE, SIDE)
    + NODE_OVERHEAD_S
    + COST_PER_MP["SaveImage"] * megapixels(SIDE, SIDE)
)


def workflow(seed: int, steps: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "bench", "clip": ["1", 1]}},
        "3": {"class_type": "EmptyLatentImage",
              "inputs": {"width": SIDE, "height": SIDE, "batch_size": 1}},
        "4": {"class_type": "KSampler",
              "inputs": {"seed": seed, "steps": steps, "cfg": 1.0, "sampler_name": "euler",
                         "scheduler": "normal", "denoise": 1.0, "model": ["1", 0],
                         "positive": ["2", 0], "negative": ["2", 0], "latent_image": ["3", 0]}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SaveImage",
              "inputs": {"filename_prefix": "bench", "images": ["5", 0]}},
    }  # fmt: skip


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the start
    steps: int


def mean_work(step_time: float) -> float:
    """Expected emulated seconds of one job at time scale 1."""
    steps = (1 - LONG_SHARE) * SHORT_STEPS + LONG_SHARE * LONG_STEPS
    return steps * step_time + FIXED_WORK


def plan(rng: random.Random, jobs: int, rate: float) -> list[Planned]:
    """Poisson arrivals at `rate` per second; 10 % of the jobs are long."""
    out, at = [], 0.0
    for _ in range(jobs):
        at += rng.expovariate(rate)
        out.append(Planned(at, LONG_STEPS if rng.random() < LONG_SHARE else SHORT_STEPS))
    return out


@dataclass(frozen=True)
class Outcome:
    trace: list[TraceJob]  # actual submit times, emulated work at scale 1
    latencies: list[float]  # submit (before POST) to `executing` null on the socket


async def drive(
    session: aiohttp.ClientSession, bases: Sequence[str], jobs: list[Planned], step_time: float
) -> Outcome:
    """Post each job at its time with one client_id, without waiting for
    earlier answers, job i to `bases[i % len(bases)]` (several replicas: the
    socket is on the first, so the others' jobs' events cross Redis); a job
    is done when the socket says `executing` with node null for its prompt_id."""
    client_id = f"bench-{uuid.uuid4().hex}"
    finished: dict[str, float] = {}
    failed: list[str] = []
    all_done = asyncio.Event()
    wanted: set[str] = set()
    ws = await session.ws_connect(f"{bases[0]}/ws?clientId={client_id}", max_msg_size=0)

    async def listen() -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = msg.json()
            data = event.get("data") or {}
            if event.get("type") == "execution_error":
                failed.append(str(data.get("prompt_id")))
            elif event.get("type") == "executing" and data.get("node") is None:
                finished.setdefault(str(data.get("prompt_id")), time.perf_counter())
                if wanted and wanted <= finished.keys():
                    all_done.set()

    submitted: list[tuple[float, str]] = [(0.0, "")] * len(jobs)

    async def post(index: int, job: Planned) -> None:
        body = {"prompt": workflow(index, job.steps), "client_id": client_id}
        sent = time.perf_counter()
        async with session.post(f"{bases[index % len(bases)]}/prompt", json=body) as resp:
            answer = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"POST /prompt: HTTP {resp.status}: {answer}")
        submitted[index] = (sent, answer["prompt_id"])

    listener = asyncio.create_task(listen())
    try:
        start = time.perf_counter()
        posts = []
        for index, job in enumerate(jobs):
            delay = start + job.at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(post(index, job)))
        await asyncio.gather(*posts)
        wanted.update(pid for _, pid in submitted)
        if not wanted <= finished.keys():
            await asyncio.wait_for(all_done.wait(), timeout=max(120.0, jobs[-1].at))
    finally:
        listener.cancel()
        await ws.close()
    if failed:
        raise RuntimeError(f"{len(failed)} jobs failed, e.g. {failed[0]}")
    trace = [
        TraceJob(sent - start, job.steps * step_time + FIXED_WORK)
        for (sent, _), job in zip(submitted, jobs, strict=True)
    ]
    latencies = [finished[pid] - sent for sent, pid in submitted]
    return Outcome(trace, latencies)
