"""`comfyui-balancer bench history`: answers the balancer gives itself.

One emulated backend and one balancer (SQLite store, `history.max_items` set
to the size under test), each in its own process. Before the balancer starts,
its store is filled with N synthetic kept entries (about 1 KB each, older
than any real job); then `--jobs` real jobs run through it, so the backend's
own history holds those. Side by side in one run, closed loop at concurrency
1: `GET /history?max_items=64` and `GET /system_stats`, straight to the
backend and through the balancer. The backend holds only the real jobs, so
the direct figure is the backend at its fastest, not at 10,000 entries.

Loop stall: while one unlimited `GET /history` (every kept entry) is read by
another process (`balancer.bench.reader`, so reading it does not hold up
this one), this process sends `GET /balancer/health` back to back; the
slowest of those answers is how long the balancer's loop was held at most,
printed beside the same probe's slowest answer with nothing else running
(on a shared machine, that one is the noise of the machine itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from balancer.bench.harness import (
    child,
    closed_loop,
    free_port,
    table,
    wait_ready,
    write_balancer_config,
)
from balancer.demo import DEMO_PROMPT
from balancer.store.kept import entry_time
from balancer.store.sqlite import SqliteStore


def synthetic_entry(i: int) -> dict[str, Any]:
    pid = f"seed-{i:07d}"
    image = {"filename": f"ComfyUI_{i:05d}_.png", "subfolder": "@gpu0", "type": "output"}
    started = 1_000_000 + i  # ms: long before any real job
    return {
        "prompt": [i, pid, DEMO_PROMPT, {"client_id": "bench"}, ["9"]],
        "outputs": {"9": {"images": [image]}},
        "status": {
            "status_str": "success",
            "completed": True,
            "messages": [
                ["execution_start", {"prompt_id": pid, "timestamp": started}],
                ["execution_cached", {"nodes": [], "prompt_id": pid, "timestamp": started}],
                ["execution_success", {"prompt_id": pid, "timestamp": started + 900}],
            ],
        },
        "meta": {"9": {"node_id": "9", "display_node": "9", "parent_node": None}},
    }


def seed(path: Path, count: int) -> None:
    SqliteStore(path, count).close()  # the schema
    db = sqlite3.connect(path)
    entries = (synthetic_entry(i) for i in range(count))
    rows = ((e["prompt"][1], json.dumps(e), entry_time(e)) for e in entries)
    with db:
        db.executemany("INSERT INTO history (prompt_id, entry, start) VALUES (?, ?, ?)", rows)
    db.close()


async def run_jobs(session: aiohttp.ClientSession, front: str, direct: str, jobs: int) -> None:
    for _ in range(jobs):
        async with session.post(front + "/prompt", json={"prompt": DEMO_PROMPT}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"POST /prompt: HTTP {resp.status}")
    for _ in range(600):
        async with session.get(f"{direct}/history?max_items={jobs}") as resp:
            if len(await resp.json()) >= jobs:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError("the benchmark jobs never finished")


async def slowest_probe(session: aiohttp.ClientSession, url: str, done: asyncio.Event) -> float:
    worst = 0.0
    while not done.is_set():
        began = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
        worst = max(worst, time.perf_counter() - began)
    return worst


async def stall(session: aiohttp.ClientSession, front: str) -> tuple[float, float, float, float]:
    """(seconds, MB, slowest health answer meanwhile, slowest with nothing else)."""
    done = asyncio.Event()
    window = time.perf_counter()
    probe = asyncio.create_task(slowest_probe(session, front + "/balancer/health", done))
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "balancer.bench.reader", front + "/history",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await reader.communicate()
    done.set()
    window = time.perf_counter() - window
    size, seconds = int(out.split()[0]), float(out.split()[1])
    during = await probe
    quiet = asyncio.Event()
    alone = asyncio.create_task(slowest_probe(session, front + "/balancer/health", quiet))
    await asyncio.sleep(window)  # as long as the probe ran beside the reader
    quiet.set()
    return seconds, size / 1e6, during, await alone


async def one_size(kept: int, args: argparse.Namespace) -> list[list[object]]:
    backend_port, balancer_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-history-"))
    seed(folder / "balancer.db", kept)
    config = write_balancer_config(
        folder, [backend_port], balancer_port,
        store={"kind": "sqlite", "path": str(folder / "balancer.db")},
        history={"max_items": kept + args.jobs},
    )  # fmt: skip
    direct, front = f"http://127.0.0.1:{backend_port}", f"http://127.0.0.1:{balancer_port}"
    emulate = ["emulate", "--port", str(backend_port), "--time-scale", "0"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(child([*emulate, "--base-dir", str(folder / "gpu0")]))
        stack.enter_context(child(["serve", "--config", str(config)]))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await wait_ready(session, direct + "/queue")
            await wait_ready(session, front + "/balancer/health", timeout=120)
            await asyncio.sleep(1.5)  # the first probe lands
            await run_jobs(session, front, direct, args.jobs)
            rows = []
            for route in ("/history?max_items=64", "/system_stats"):
                base = await closed_loop(session, direct + route, 1, args.seconds)
                via = await closed_loop(session, front + route, 1, args.seconds)
                rows.append([f"GET {route}", kept, f"{base.rps:.0f}", f"{via.rps:.0f}",
                             f"{via.rps / base.rps:.2f}x", f"{base.p50_ms:.2f}",
                             f"{via.p50_ms:.2f}"])  # fmt: skip
            seconds, mb, during, alone = await stall(session, front)
            rows.append([f"GET /history (all, {mb:.0f} MB, {seconds:.2f} s)", kept, "", "", "",
                         "", f"slowest other answer {1000 * during:.1f} ms"
                         f" (alone {1000 * alone:.1f})"])  # fmt: skip
    return rows


async def measure(args: argparse.Namespace) -> str:
    rows = []
    for kept in args.kept:
        rows += await one_size(kept, args)
    headers = ["route (c=1)", "kept", "direct rps", "via rps", "ratio", "direct p50", "via p50"]
    note = f"(latencies in ms; one emulator holding {args.jobs} entries, one balancer)"
    return table(headers, rows) + "\n" + note


def run_history_bench(args: argparse.Namespace) -> int:
    print(asyncio.run(measure(args)))
    return 0
