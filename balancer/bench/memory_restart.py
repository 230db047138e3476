"""`bench memory`'s restart rows: what a balancer holds after a restart.

`serve` (the real CLI, in a process of its own) is started on a copy of the
SQLite file `bench memory` filled with N finished jobs, with one backend
that does not answer; once `/balancer/health` answers, its RSS is read from
/proc. The reference is the same command on an empty file, in the same run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp

from balancer.bench.harness import (
    child,
    free_port,
    process_rss_mb,
    wait_ready,
    write_balancer_config,
)


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of an open SQLite store (its WAL included)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


async def serve_rss(db: Path) -> float:
    """RSS (MB) of `serve` once it answers, started on the store `db`."""
    folder = db.parent / f"serve-{db.stem}"
    folder.mkdir()
    port = free_port()
    store = {"kind": "sqlite", "path": str(db)}
    config = write_balancer_config(folder, [free_port()], port, store=store)
    with child(["serve", "--config", str(config)]) as proc:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"http://127.0.0.1:{port}/balancer/health")
        return process_rss_mb(proc.pid)


def restart_rows(files: dict[int, Path], folder: Path) -> list[list[object]]:
    """One row per filled file, after the empty file's (the reference)."""
    empty = folder / "empty.db"
    fresh = asyncio.run(serve_rss(empty))
    rows: list[list[object]] = [["fresh process", 0, f"{fresh:.1f}", "1.00x"]]
    for jobs, db in sorted(files.items()):
        rss = asyncio.run(serve_rss(db))
        rows.append(["restart", jobs, f"{rss:.1f}", f"{rss / fresh:.2f}x"])
    return rows
