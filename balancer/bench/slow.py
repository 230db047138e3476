"""`comfyui-balancer bench slow`: a slow backend is not a dead one (issue
18, goal 4: the same run gives no 503 and at least 0.9x nginx's rate).

One emulator whose GET /object_info holds its event loop `--cost` seconds
a call (EmulatorOptions.object_info_cost; 0.1 s: 32 calls at once take
about 3 s each, as a real ComfyUI did, and its probes wait behind them),
and `--clients` (32) closed-loop clients for `--seconds` per row: straight
to it, through nginx and through HAProxy (in front of it, where installed),
and through the balancer in front of it alone (its defaults: 2 s probe
timeout). Answers are counted by status, 503s by their error type; the rate
is 200 answers a second.

Two routes. The balancer answers `/object_info` from the catalogue it read
from the backend (issues 13 and 18), not per call, so its row leaves the
backend idle: beside nginx that is trivially favourable. So the emulator's
`PASSED` route holds its loop as long (`--slow-path`), and the balancer
passes every call of it to the backend, as nginx does: its ratio to nginx
there is of pass-through under a slow backend. And in the last row the
balancer's `/object_info` clients run while as many clients call the
backend directly, keeping it as slow as in the first rows. In each row
through the balancer its probes wait seconds and time out;
`/balancer/status` is read every `SAMPLE` seconds meanwhile: how often it
showed the backend down, how old its last probe got, and the probe errors
it named.
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


CACHED = "/object_info"  # answered by the balancer from its catalogue
PASSED = "/experiment/models"  # passed to the backend per call, held as long there
BUSY, BESIDE = "balancer, backend busy", "direct, beside it"


def _row(route: str, name: str, tally: Tally, nginx: Tally | None) -> list[object]:
    p50 = statistics.median(tally.latencies) if tally.latencies else 0.0
    vs = f"{tally.rate / nginx.rate:.2f}" if nginx is not None and nginx.rate else "-"
    other = sum(tally.answers.values()) - tally.count("200") - tally.count("503")
    return [route, name, tally.count("200"), tally.count("503"), other, f"{tally.rate:.1f}", vs,
            f"{p50:.3f}"]  # fmt: skip


Rows = dict[tuple[str, str], Tally]


async def _rows(
    session: aiohttp.ClientSession, paths: dict[str, str], clients: int, seconds: float
) -> tuple[Rows, dict[str, Seen]]:
    """Each path on each route, one after the other, then the balancer's
    `/object_info` beside as many direct callers; what /balancer/status
    showed during each row through the balancer."""
    tallies: Rows = {}
    seen: dict[str, Seen] = {}
    front = paths["balancer"]
    for route in (CACHED, PASSED):
        for name, base in paths.items():
            calls = counted_loop(session, base + route, clients, seconds)
            if name != "balancer":
                tallies[route, name] = await calls
                continue
            watched = watch_status(session, front, time.perf_counter() + seconds)
            tallies[route, name], seen[route] = await asyncio.gather(calls, watched)
    tallies[CACHED, BUSY], tallies[CACHED, BESIDE], seen[BUSY] = await asyncio.gather(
        counted_loop(session, front + CACHED, clients, seconds),
        counted_loop(session, paths["direct"] + CACHED, clients, seconds),
        watch_status(session, front, time.perf_counter() + seconds),
    )
    return tallies, seen


async def measure(seconds: float, clients: int, cost: float) -> str:
    port, balancer_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-slow-"))
    config = write_balancer_config(folder, [port], balancer_port)
    direct = f"http://127.0.0.1:{port}"
    front = f"http://127.0.0.1:{balancer_port}"
    emulate = ["emulate", "--port", str(port), "--time-scale", "0", "--base-dir", str(folder)]
    emulate += ["--object-info-cost", str(cost), "--slow-path", PASSED]
    with contextlib.ExitStack() as stack:
        stack.enter_context(child(emulate))
        stack.enter_context(child(["serve", "--config", str(config)]))
        refs = {r.binary: stack.enter_context(r.in_front(folder, [port])) for r in (NGINX, HAPROXY)}
        paths = {"direct": direct, **{n: s[0] for n, s in refs.items() if s}, "balancer": front}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for base in paths.values():
                await wait_ready(session, base + CACHED)
            tallies, seen = await _rows(session, paths, clients, seconds)
    rows = [_row(*key, tally, tallies.get((key[0], "nginx"))) for key, tally in tallies.items()]
    headers = ["route", "path", "200", "503", "other", "200/s", "vs nginx", "p50 s"]
    kinds: Counter[str] = Counter()
    for tally in tallies.values():
        kinds.update({k: n for k, n in tally.answers.items() if k.startswith("503")})
    note = (
        f"\n({clients} clients per row for {seconds:g} s; the emulator holds its loop {cost:g} s"
        f" per call of either route; balancer on {CACHED}: its cached catalogue; on {PASSED}:"
        f" every call passed to the backend; backend busy: as many clients calling the backend"
        f" directly at the same time; 503s by type: {dict(kinds) or 'none'})"
    )
    for row, what in seen.items():
        note += f"\n({BUSY if row == BUSY else f'balancer on {row}'}: {what})"
    for name, server in refs.items():
        if server is None:
            note += f"\n({name} is not installed here: its row is not measured)"
    return table(headers, rows) + note


def run_slow_bench(args: argparse.Namespace) -> int:
    print(asyncio.run(measure(args.seconds, args.clients, args.cost)))
    return 0
