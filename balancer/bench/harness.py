"""Pieces the benchmarks share: child processes on free ports, a closed-loop
load generator, and a plain-text table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from balancer.bench.cores import pinned

# Re-exported: the benches and tests take them from here.
from balancer.bench.ports import free_port as free_port
from balancer.bench.ports import free_ports as free_ports

# Seconds a child process may take to answer ready. It only bounds a hang: a
# Python process starting on a loaded machine (several at once, as replicas)
# can take tens of seconds.
READY_BOUND = 120.0


def write_balancer_config(
    folder: Path, backend_ports: Sequence[int], port: int, **extra: Any
) -> Path:
    """A config for a benchmark's balancer: loopback, quiet logs, an in-memory
    store and a data dir of its own (two balancers must never share a store)."""
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": port},
        "backends": [
            {"name": f"gpu{i}", "url": f"http://127.0.0.1:{p}"} for i, p in enumerate(backend_ports)
        ],
        "log": {"level": "warning"},
        "store": {"kind": "memory"},
        "data_dir": str(folder / "data"),
        "limits": {"max_connections_per_peer": 100_000},  # every client is on loopback
        **extra,
    }
    path = folder / "balancer.yaml"
    path.write_text(json.dumps(config))
    return path


def new_log(folder: Path, stem: str) -> Path:
    """`folder/<stem>.log`, or, for a later start of the same process (a
    restart, a retry on another port), the first of `<stem>.1.log`,
    `<stem>.2.log`, ... not taken: each start keeps its own log."""
    path, count = folder / f"{stem}.log", 0
    while path.exists():
        count += 1
        path = folder / f"{stem}.{count}.log"
    return path


@contextlib.contextmanager
def child(
    args: Sequence[str],
    module: str = "balancer",
    log: Path | None = None,
    cores: frozenset[int] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m MODULE ARGS` (the CLI by default) in its own process,
    stopped on exit; what it prints goes to `log` (else nowhere); on `cores`
    only, when given (else on this process's)."""
    with running([sys.executable, "-m", module, *args], log, cores) as proc:
        yield proc


@contextlib.contextmanager
def running(
    command: Sequence[str], log: Path | None = None, cores: frozenset[int] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` in its own process, stopped on exit (terminated, killed
    after 10 s); what it prints is appended to `log` (else goes nowhere);
    on `cores` only, when given."""
    with log.open("ab") if log is not None else open(os.devnull, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, preexec_fn=pinned(cores))
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def process_rss_mb(pid: int) -> float:
    """A process's resident memory (MB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def wait_ready(
    session: aiohttp.ClientSession, url: str, timeout: float = READY_BOUND
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.latencies)


async def wait_json(
    session: aiohttp.ClientSession,
    url: str,
    ok: Callable[[Any], bool],
    timeout: float = READY_BOUND,
) -> None:
    """Until `url` answers 200 with a JSON body that `ok` accepts."""
    for _ in range(int(timeout / 0.1)):
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as resp:
                if resp.status == 200 and ok(await resp.json()):
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} was not ready in {timeout:.0f} s")


async def closed_loop(
    session: aiohttp.ClientSession, url: str, concurrency: int, seconds: float
) -> Result:
    """`concurrency` workers each sending the next request when the last answers."""
    return await spread_loop(session, [url], concurrency, seconds)


async def spread_loop(
    session: aiohttp.ClientSession, urls: Sequence[str], concurrency: int, seconds: float
) -> Result:
    """A closed loop whose worker `i` sends to `urls[i % len(urls)]` (clients
    spread over several replicas, as an L4 load balancer spreads connections)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(url: str) -> None:
        while (start := time.perf_counter()) < stop_at:
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url}: HTTP {resp.status}")
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
    return Result(len(latencies), time.perf_counter() - began, latencies)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


Launch = Callable[[int], contextlib.AbstractContextManager[subprocess.Popen[bytes]]]


async def start_on_free_port(
    session: aiohttp.ClientSession,
    stack: contextlib.ExitStack,
    launch: Launch,
    path: str,
    timeout: float = 60.0,
    tries: int = 5,
) -> tuple[int, subprocess.Popen[bytes]]:
    """A process `launch(port)` starts on a port that was free, entered on
    `stack`, once `path` answers 200 there. A port taken meanwhile (the
    process exits) is retried on another one: no race between finding a
    free port and binding it."""
    for _ in range(tries):
        port = free_port()
        proc = stack.enter_context(launch(port))
        url = f"http://127.0.0.1:{port}{path}"
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return port, proc
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")
    raise RuntimeError(f"no free port taken in {tries} tries")
