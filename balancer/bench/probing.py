"""The steady cost of probing N backends, for `bench ops`.

The emulated backends run in two processes of their own
(`balancer.bench.emulators`) and the balancer in another (`serve`, default
probe settings), so the CPU each side spends is read apart from `/proc`: the
balancer's while it probes N backends with nothing else to do (read over a
window that starts one window after every backend is up and its catalogue
read, once channel reconnects have settled: catalogue reads run in the
background, after a backend is up), beside what answering those
probes costs the backends. Also counted: backends up after
start-up, and the probes that timed out (the balancer's
`backend_probe_failed` and `backend_down` log lines with a timeout): a
backend's first probe, or a later one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from balancer.bench.harness import child, free_ports, wait_ready, write_balancer_config

EMULATOR_PROCESSES = 2
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def up_count(session: aiohttp.ClientSession, front: str) -> int:
    async with session.get(front + "/balancer/status") as resp:
        up: int = (await resp.json())["pool"]["up"]
        return up


async def ready_count(session: aiohttp.ClientSession, front: str) -> int:
    """Backends able to take prompts: up, and their catalogue read."""
    async with session.get(front + "/balancer/ready") as resp:
        ready: int = (await resp.json())["backends_ready"]
        return ready


async def wait_all(
    count: Callable[[], Awaitable[int]], expected: int, began: float
) -> tuple[int, float]:
    """The count once it reaches `expected` (or after 120 s), and the
    seconds since `began`."""
    while (seen := await count()) < expected and time.monotonic() - began < 120:
        await asyncio.sleep(0.5)
    return seen, time.monotonic() - began


def timeouts_logged(log: Path) -> tuple[int, int]:
    """Probe failures the balancer logged that were timeouts: of first
    probes (`backend_down` of a backend with no failure logged before: never
    up) and of later ones."""
    first = later = 0
    failed: set[str] = set()
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            event, backend = entry.get("event"), str(entry.get("backend"))
            if event not in ("backend_probe_failed", "backend_down"):
                continue
            if "timeout" in str(entry.get("reason", "")).lower():
                if event == "backend_down" and backend not in failed:
                    first += 1
                else:
                    later += 1
            failed.add(backend)
    return first, later


async def steady_cost(count: int, seconds: float, stats_interval: float) -> list[list[object]]:
    """Rows: (what, backends, value) for the balancer probing `count` backends."""
    folder = Path(tempfile.mkdtemp(prefix="bench-probing-"))
    *ports, front_port = free_ports(count + 1)
    log = folder / "balancer.log"
    probe = {"stats_interval": stats_interval}
    config = write_balancer_config(folder, ports, front_port, probe=probe)
    front = f"http://127.0.0.1:{front_port}"
    groups = [ports[i::EMULATOR_PROCESSES] for i in range(EMULATOR_PROCESSES)]
    with contextlib.ExitStack() as stack:
        emulators = [
            stack.enter_context(
                child(["0", str(folder), *(f"{p}:0" for p in group)], "balancer.bench.emulators")
            )
            for group in groups
        ]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            for port in ports:
                await wait_ready(session, f"http://127.0.0.1:{port}/queue", timeout=120)
            balancer = stack.enter_context(child(["serve", "--config", str(config)], log=log))
            await wait_ready(session, front + "/balancer/health", timeout=120)
            began = time.monotonic()
            up, to_up = await wait_all(lambda: up_count(session, front), count, began)
            ready, to_ready = await wait_all(lambda: ready_count(session, front), count, began)
            await asyncio.sleep(seconds)  # reconnects settle first
            mine, theirs = cpu_seconds(balancer.pid), sum(cpu_seconds(e.pid) for e in emulators)
            began = time.monotonic()
            await asyncio.sleep(seconds)
            window = time.monotonic() - began
            mine = cpu_seconds(balancer.pid) - mine
            theirs = sum(cpu_seconds(e.pid) for e in emulators) - theirs
    first, later = timeouts_logged(log)
    return [
        ["backends up after start-up", count, f"{up} in {to_up:.1f} s"],
        ["  and their catalogues read", count, f"{ready} in {to_ready:.1f} s"],
        ["first probes timed out", count, first],
        ["later probes timed out (whole run)", count, later],
        ["balancer CPU while probing", count, f"{100 * mine / window:.1f} % of a core"],
        ["backends' CPU answering the probes", count, f"{100 * theirs / window:.1f} % of a core"],
    ]
