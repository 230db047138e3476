"""`comfyui-balancer bench store`: what one store write costs the event loop.

Writes run on the event loop thread, so their cost is added to whatever
request or event is being handled. Each row times N writes of the kind the
job path makes (a queued job carrying the txt2img workflow, a pin, a finished
history entry), memory store and SQLite store side by side, and the Redis
store on a real redis-server on loopback when one is installed (there a
write is one round trip: the loop is free while it waits, but the job path
waits that long).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from balancer.bench.harness import table
from balancer.bench.redisserver import RedisServer, redis_server_binary
from balancer.store import MemoryStore, Pin, SqliteStore, Store, StoredJob
from balancer.store.redis import RedisStore, redis_client

WORKFLOW = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "workflows"


def sample_prompt() -> dict[str, Any]:
    """The txt2img workflow when the tests' fixtures are there, else a stand-in of similar size."""
    path = WORKFLOW / "txt2img.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    return {str(i): {"class_type": "Node", "inputs": {"text": "x" * 80}} for i in range(7)}


def writes(
    store: Store, n: int, prompt: dict[str, Any]
) -> dict[str, Callable[[int], Awaitable[object]]]:
    entry = {"prompt": [1, "p", prompt, {}, ["9"]], "outputs": {}, "status": {"messages": []}}
    return {
        "create": lambda i: store.create(
            StoredJob(f"p{i}", {"prompt": prompt}, "d", "c", float(i))
        ),
        "transition": lambda i: store.transition(
            f"p{i}", ("waiting",), "dispatching", {"backend": "gpu0"}
        ),
        "put_pin": lambda i: store.put_pin(Pin(f"p{i}", "gpu0", "d", b'{"prompt_id": "p"}')),
        "put_history": lambda i: store.put_history(f"p{i}", entry),
    }


async def timed(store: Store, n: int, prompt: dict[str, Any]) -> dict[str, float]:
    """Microseconds per write of each kind, mean of `n`."""
    results = {}
    for name, write in writes(store, n, prompt).items():
        began = time.perf_counter()
        for i in range(n):
            await write(i)
        results[name] = (time.perf_counter() - began) / n * 1e6
    return results


async def measure(n: int) -> str:
    prompt = sample_prompt()
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    results = {
        "memory": await timed(MemoryStore(), n, prompt),
        "sqlite": await timed(SqliteStore(folder / "b.db"), n, prompt),
    }
    note = f"(microseconds per write, mean of {n}; SQLite in WAL mode, synchronous=NORMAL"
    if redis_server_binary() is None:
        note += "; redis-server not installed: no Redis column"
    else:
        server = RedisServer(folder / "redis")
        server.start()
        store = RedisStore(redis_client(server.url, 2.0))
        try:
            results["redis"] = await timed(store, n, prompt)
        finally:
            await store.aclose()
            server.stop()
        note += "; Redis: one round trip to a redis-server on loopback"
    kinds = list(results)
    rows = [
        [name, *(f"{results[kind][name]:.1f}" for kind in kinds)]
        for name in ("create", "transition", "put_pin", "put_history")
    ]
    return table(["write", *(f"{kind} us" for kind in kinds)], rows) + "\n" + note + ")"


def run_store_bench(args: argparse.Namespace) -> int:
    print(asyncio.run(measure(args.writes)))
    return 0
