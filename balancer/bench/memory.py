"""`comfyui-balancer bench memory`: finished jobs to the store's memory.

Each store in a child process of its own (a fresh interpreter, so one's
memory does not colour the other's), driven through the calls a job makes
in its life: create, put_pin, transition to running, put_history with a
realistic entry (about 1 KB), transition to succeeded. RSS is read from /proc after each
checkpoint, and the SQLite file's size with it; the first checkpoint is the
reference the later ones are compared with. `history.max_items` is the
default (10,000): past it, entries and their pins expire together.

Then a balancer restart (memory_restart): `serve` started on a copy of the
SQLite file taken at the `--restart` checkpoints, against `serve` on an
empty file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from balancer.bench.harness import table
from balancer.bench.history import synthetic_entry
from balancer.bench.memory_restart import copy_store, restart_rows
from balancer.store import MemoryStore, Pin, SqliteStore, Store, StoredJob


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def one_job(store: Store, i: int) -> None:
    pid = f"job-{i:07d}"
    request = {"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"color": i}}}}
    await store.create(StoredJob(pid, request, "digest", "client", float(i), submitted_at=float(i)))
    await store.put_pin(
        Pin(pid, f"gpu{i % 8}", "digest", b'{"prompt_id": "%s"}' % pid.encode(), "c")
    )
    await store.transition(pid, {"waiting"}, "running", {"backend": "gpu0", "started_at": float(i)})
    entry = synthetic_entry(i)
    entry["prompt"][1] = pid
    await store.put_history(pid, entry)
    await store.transition(pid, {"running"}, "succeeded", {"ended_at": float(i) + 1})


async def fill(store: Store, start: int, stop: int) -> None:
    for i in range(start, stop):
        await one_job(store, i)


def child(kind: str, folder: Path, checkpoints: list[int]) -> None:
    """Runs in the child: prints one JSON line per checkpoint, and leaves a
    copy of the SQLite file at each as `at-<jobs>.db` in `folder`."""
    db = folder / "b.db"
    store: Store = MemoryStore() if kind == "memory" else SqliteStore(db)
    done = 0
    for checkpoint in checkpoints:
        asyncio.run(fill(store, done, checkpoint))
        done = max(done, checkpoint)
        size = sum(p.stat().st_size for p in folder.glob("b.db*")) if db.exists() else 0
        print(json.dumps({"jobs": done, "rss": rss_mb(), "disk": size / 1e6}), flush=True)
        if db.exists():
            copy_store(db, folder / f"at-{done}.db")


def measure(checkpoints: list[int], restarts: list[int]) -> str:
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    for kind in ("memory", "sqlite"):
        (folder / kind).mkdir()
        args = [sys.executable, "-m", "balancer.bench.memory", kind, str(folder / kind)]
        args += map(str, sorted({*checkpoints, *restarts}))
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        points = [json.loads(line) for line in out.splitlines()]
        points = [p for p in points if p["jobs"] in checkpoints]
        first = points[0]["rss"]
        for p in points:
            disk = f"{p['disk']:.1f}" if kind == "sqlite" else ""
            rows.append([kind, p["jobs"], f"{p['rss']:.1f}", f"{p['rss'] / first:.2f}x", disk])
    headers = ["store", "finished jobs", "RSS MB", "vs first", "disk MB"]
    growth = table(headers, rows) + "\n(goal: within 1.10x of the first row from 10k to 100k jobs)"
    files = {jobs: folder / "sqlite" / f"at-{jobs}.db" for jobs in restarts}
    headers = ["serve (sqlite)", "finished jobs", "RSS MB", "vs fresh"]
    restart = table(headers, restart_rows(files, folder))
    note = "\n(RSS once /balancer/health answers; fresh: the same command on an empty file)"
    return f"{growth}\n\n{restart}{note}"


def run_memory_bench(args: argparse.Namespace) -> int:
    print(measure(args.jobs, args.restart))
    return 0


if __name__ == "__main__":
    child(sys.argv[1], Path(sys.argv[2]), [int(x) for x in sys.argv[3:]])
