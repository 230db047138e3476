"""`comfyui-balancer bench probe-share`: each replica probes on its own vs
one replica probes and shares its snapshot (issue 14, part 5), measured.

N emulated backends in two processes of their own (`balancer.bench.emulators`,
as `bench ops` runs them), each counting the requests it serves (the
emulator's `/_emulator/state` `requests`). Each phase starts a fresh
`redis-server` and `serve` replicas on it, waits until every replica has
every backend ready, lets start-up work (catalogue reads) settle for one
window, then reads over the next window the replicas' CPU time (from /proc)
and the requests the backends served:

1. R replicas, each probing (the default, what the balancer does);
2. 1 replica probing: the one that would probe for all in the shared design;
3. R - 1 replicas that do not probe (`probe.interval` 1 h: their first
   round is spread over half an hour, a tenth of the backends each 3
   minutes): what the others cost besides reading the snapshot, their
   channels to every backend included;
4. the sharing itself, timed in this process on the same Redis: the prober
   writes every backend's `/queue` and `/system_stats` answers as one JSON
   value under a lease (SET PX) once per `probe.interval`, and each of the
   R - 1 others reads and parses it once per interval.

The shared design is not built: its cost is the sum of 2, 3 and 4 (a lower
bound: leader election and the lease renewals are left out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import redis

from balancer.bench.floor import cpu_seconds
from balancer.bench.harness import child, free_ports, table, wait_ready
from balancer.bench.redisserver import RedisServer
from balancer.bench.replicaset import replica_processes, shared_redis, wait_replicas_ready

EMULATOR_PROCESSES = 2
NOT_PROBING = {"interval": 3600, "stale_after": 7200}
SNAPSHOT_KEY = "bench:probe-snapshot"


class Backends:
    def __init__(self, session: aiohttp.ClientSession, ports: list[int]) -> None:
        self.session = session
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]

    async def served(self) -> int:
        """Requests the backends have served so far, all paths."""

        async def one(url: str) -> int:
            async with self.session.get(url + "/_emulator/state") as resp:
                return sum((await resp.json())["requests"].values())

        return sum(await asyncio.gather(*(one(url) for url in self.urls)))

    async def snapshot(self) -> dict[str, Any]:
        """What a prober reads of each backend, as it would share it."""

        async def one(url: str) -> dict[str, Any]:
            answers = {}
            for path in ("/queue", "/system_stats"):
                async with self.session.get(url + path) as resp:
                    answers[path] = await resp.json()
            return {**answers, "taken_at": time.time(), "healthy": True}

        return dict(zip(self.urls, await asyncio.gather(*map(one, self.urls)), strict=True))


async def phase(
    folder: Path, backends: Backends, count: int, window: float, probe: dict[str, Any]
) -> tuple[float, float]:
    """(replicas' CPU in % of a core, backend requests per second per
    backend) over `window` seconds with `count` replicas."""
    ports = [int(url.rsplit(":", 1)[1]) for url in backends.urls]
    with (
        shared_redis(folder) as server,
        replica_processes(folder, ports, count, server, probe=probe) as replicas,
    ):
        if probe:  # its first round is spread over half an hour: it will not be ready
            for url in replicas.urls:
                await wait_ready(backends.session, url + "/balancer/health", timeout=120)
        else:
            await wait_replicas_ready(backends.session, replicas, timeout=120)
        await asyncio.sleep(window)  # catalogue reads and reconnects settle first
        pids = [proc.pid for proc in replicas.procs]
        cpu, served, began = sum(map(cpu_seconds, pids)), await backends.served(), time.monotonic()
        await asyncio.sleep(window)
        seconds = time.monotonic() - began
        cpu, served = sum(map(cpu_seconds, pids)) - cpu, await backends.served() - served
    return 100 * cpu / seconds, served / seconds / len(ports)


def sharing_cpu(server: RedisServer, snapshot: dict[str, Any], readers: int, rounds: int) -> float:
    """CPU seconds one round of sharing costs its replicas: one write of
    the snapshot under a lease, `readers` reads and parses."""
    client = redis.Redis.from_url(server.url)
    began = time.process_time()
    for _ in range(rounds):
        client.set(SNAPSHOT_KEY, json.dumps(snapshot), px=5000)
        for _ in range(readers):
            json.loads(client.get(SNAPSHOT_KEY) or b"{}")
    client.close()
    return (time.process_time() - began) / rounds


@contextlib.contextmanager
def emulator_processes(folder: Path, ports: list[int]) -> Iterator[None]:
    groups = [ports[i::EMULATOR_PROCESSES] for i in range(EMULATOR_PROCESSES)]
    with contextlib.ExitStack() as stack:
        for group in groups:
            specs = [f"{p}:0" for p in group]
            stack.enter_context(child(["0", str(folder), *specs], "balancer.bench.emulators"))
        yield


async def measure(args: argparse.Namespace) -> list[list[object]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-probe-share-"))
    ports, r = free_ports(args.backends), args.replicas
    with emulator_processes(folder, ports):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            for port in ports:
                await wait_ready(session, f"http://127.0.0.1:{port}/queue", timeout=120)
            backends = Backends(session, ports)
            each = await phase(folder / "each", backends, r, args.seconds, {})
            prober = await phase(folder / "one", backends, 1, args.seconds, {})
            others = await phase(folder / "others", backends, r - 1, args.seconds, NOT_PROBING)
            snapshot = await backends.snapshot()
    with shared_redis(folder / "share") as server:
        per_round = sharing_cpu(server, snapshot, r - 1, args.rounds)
    share = 100 * per_round / 1.0  # one round per probe.interval (1 s)
    size = len(json.dumps(snapshot))
    shared = (prober[0] + others[0] + share, prober[1] + others[1])
    return [
        [f"each of {r} replicas probes (built)", r, *cells(each)],
        ["1 replica probing (the sharer)", 1, *cells(prober)],
        [f"{r - 1} replicas not probing", r - 1, *cells(others)],
        [f"sharing: 1 write + {r - 1} reads of {size // 1024} KB a second", r, f"{share:.1f}", "0"],
        ["one probes and shares (sum of the 3 above)", r, *cells(shared)],
    ]


def cells(measured: tuple[float, float]) -> list[str]:
    cpu, rate = measured
    return [f"{cpu:.1f}", f"{rate:.2f}"]


def run_probe_share_bench(args: argparse.Namespace) -> int:
    rows = asyncio.run(measure(args))
    headers = ["setup", "replicas", "replicas' CPU % of a core", "requests/s per backend"]
    print(table(headers, rows))
    print(
        f"({args.backends} emulated backends, default probe settings (interval 1 s), CPU and"
        f" requests over {args.seconds:g} s after {args.seconds:g} s of settling; sharing"
        f" timed over {args.rounds} rounds in the bench process, Redis's own CPU left out)"
    )
    return 0
