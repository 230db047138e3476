"""`comfyui-balancer bench slow`: a slow backend is not a dead one (issue
18, goal 4: the same run gives no 503 and at least 0.9x nginx's rate).

One emulator whose GET /object_info holds its event loop `--cost` seconds
a call (EmulatorOptions.object_info_cost; 0.1 s: 32 calls at once take
about 3 s each, as a real ComfyUI did, and its probes wait behind them),
and `--clients` (32) closed-loop clients calling `/object_info` for
`--seconds` per row: straight to it, through nginx and through HAProxy (in
front of it, where installed), and through the balancer in front of it
alone (its defaults: 2 s probe timeout). Answers are counted by status,
503s by their error type; the rate is 200 answers a second.

The balancer answers `/object_info` from the catalogue it read from the
backend (issues 13 and 18), not per call, so its row leaves the backend
idle: beside nginx that is trivially favourable, and no setting passes the
call through. So in the last row the balancer's clients run while as many
clients call the backend directly, keeping it as slow as in the first rows:
the balancer's probes then wait seconds and time out. `/balancer/status` is
read every `SAMPLE` seconds meanwhile: how often it showed the backend down,
how old its last probe got, and the probe errors it named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from balancer.bench.haproxy import HAPROXY
from balancer.bench.harness import child, free_port, table, wait_ready, write_balancer_config
from balancer.bench.nginx import NGINX

SAMPLE = 0.25  # seconds between reads of /balancer/status in the last row


@dataclass(frozen=True)
class Tally:
    answers: Counter[str]  # "200", "503 <error type>", "other"
    latencies: list[float]
    seconds: float

    def count(self, prefix: str) -> int:
        return sum(n for kind, n in self.answers.items() if kind.startswith(prefix))

    @property
    def rate(self) -> float:
        return self.answers["200"] / self.seconds


def _kind(status: int, body: bytes) -> str:
    if status == 200:
        return "200"
    if status != 503:
        return "other"
    with contextlib.suppress(ValueError, TypeError, KeyError):
        return f"503 {json.loads(body)['error']['type']}"
    return "503 (not the balancer's shape)"


async def counted_loop(
    session: aiohttp.ClientSession, url: str, clients: int, seconds: float
) -> Tally:
    """`clients` workers each sending the next call when the last answers;
    every answer counted, none raises (a refused call counts as other)."""
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while (start := time.perf_counter()) < stop_at:
            try:
                async with session.get(url) as resp:
                    answers[_kind(resp.status, await resp.read())] += 1
            except aiohttp.ClientError:
                answers["other"] += 1
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return Tally(answers, latencies, time.perf_counter() - began)


@dataclass(frozen=True)
class Seen:
    """What `/balancer/status` showed of the backend, read every SAMPLE s."""

    down: int  # reads that showed it down
    reads: int
    oldest_probe: float  # the largest `last_probe_age_s` read (s)
    errors: frozenset[str]  # its `last_error`s, cut at the first ":"

    def __str__(self) -> str:
        errors = "; ".join(sorted(self.errors)) or "none"
        return (
            f"/balancer/status showed it down in {self.down} of {self.reads} reads, its"
            f" last probe up to {self.oldest_probe:.1f} s old, probe errors: {errors}"
        )


async def watch_status(session: aiohttp.ClientSession, front: str, until: float) -> Seen:
    rows = []
    while time.perf_counter() < until:
        async with session.get(front + "/balancer/status") as resp:
            rows.append((await resp.json())["backends"][0])
        await asyncio.sleep(SAMPLE)
    return Seen(
        sum(1 for row in rows if row["state"] == "down"),
        len(rows),
        max((row["last_probe_age_s"] or 0.0 for row in rows), default=0.0),
        frozenset(row["last_error"].split(":")[0] for row in rows if row["last_error"]),
    )


def _row(name: str, tally: Tally, nginx: Tally | None) -> list[object]:
    p50 = statistics.median(tally.latencies) if tally.latencies else 0.0
    vs = f"{tally.rate / nginx.rate:.2f}" if nginx is not None and nginx.rate else "-"
    other = sum(tally.answers.values()) - tally.count("200") - tally.count("503")
    return [name, tally.count("200"), tally.count("503"), other, f"{tally.rate:.1f}", vs,
            f"{p50:.3f}"]  # fmt: skip


async def measure(seconds: float, clients: int, cost: float) -> str:
    port, balancer_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-slow-"))
    config = write_balancer_config(folder, [port], balancer_port)
    direct = f"http://127.0.0.1:{port}"
    front = f"http://127.0.0.1:{balancer_port}"
    emulate = ["emulate", "--port", str(port), "--time-scale", "0", "--base-dir", str(folder)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(child([*emulate, "--object-info-cost", str(cost)]))
        stack.enter_context(child(["serve", "--config", str(config)]))
        refs = {r.binary: stack.enter_context(r.in_front(folder, [port])) for r in (NGINX, HAPROXY)}
        paths = {"direct": direct, **{n: s[0] for n, s in refs.items() if s}, "balancer": front}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for base in paths.values():
                await wait_ready(session, base + "/object_info")
            tallies = {}
            for name, base in paths.items():
                tallies[name] = await counted_loop(session, base + "/object_info", clients, seconds)
            busy, beside, seen = await asyncio.gather(
                counted_loop(session, front + "/object_info", clients, seconds),
                counted_loop(session, direct + "/object_info", clients, seconds),
                watch_status(session, front, time.perf_counter() + seconds),
            )
    tallies |= {"balancer, backend busy": busy, "direct, beside it": beside}
    rows = [_row(name, tally, tallies.get("nginx")) for name, tally in tallies.items()]
    headers = ["path", "200", "503", "other", "200/s", "vs nginx", "p50 s"]
    kinds: Counter[str] = Counter()
    for tally in tallies.values():
        kinds.update({k: n for k, n in tally.answers.items() if k.startswith("503")})
    note = (
        f"\n({clients} clients calling GET /object_info for {seconds:g} s per row; the emulator"
        f" holds its loop {cost:g} s per call; balancer: its cached catalogue; backend busy:"
        f" as many clients calling the backend directly at the same time; {seen};"
        f" 503s by type: {dict(kinds) or 'none'})"
    )
    for name, server in refs.items():
        if server is None:
            note += f"\n({name} is not installed here: its row is not measured)"
    return table(headers, rows) + note


def run_slow_bench(args: argparse.Namespace) -> int:
    print(asyncio.run(measure(args.seconds, args.clients, args.cost)))
    return 0
