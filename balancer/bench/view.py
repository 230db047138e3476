"""`bench proxy`'s large-file rows: `/view` of one big output file (50 MB by
default), straight to the emulator that holds it, through the balancer, and
through HAProxy in front of the same emulator, in the same run.

The paths take turns: `ROUNDS` rounds, each measuring direct, via and
HAProxy back to back for a slice of `--view-seconds`. On a shared machine
the load moves between rounds, so each ratio printed is the median of the
rounds' own ratios (paths measured seconds apart), beside the MB/s averaged
over the rounds. What scheduling noise moves least is the CPU a path's
server process spends per GB it delivers (from /proc): the balancer's and
HAProxy's are printed side by side (direct: the emulator's own). The load
generator reads each body as the socket delivers it and drops it. The
balancer's RSS is read before and after its rows: a streamed file must not
grow it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from balancer.bench.floor import cpu_seconds
from balancer.bench.harness import process_rss_mb, table

FILENAME = "bench-view.bin"
ROUNDS = 5  # each path measured this many times, taking turns
PATHS = ("direct", "via", "haproxy")
Server = tuple[str, int]  # base URL, the pid of the process that serves it


def write_output_file(base_dir: Path, megabytes: int) -> None:
    """The file the emulator under `base_dir` serves as an output."""
    folder = base_dir / "output"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / FILENAME).open("wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))


@dataclass(frozen=True)
class Slice:
    mb_per_s: float
    cpu_per_gb: float  # the serving process's CPU seconds per GB delivered


async def measure_slice(
    session: aiohttp.ClientSession, url: str, pid: int, concurrency: int, seconds: float
) -> Slice:
    """A closed loop of GETs whose bodies are read and dropped."""
    stop_at = time.perf_counter() + seconds
    received = 0

    async def worker() -> None:
        nonlocal received
        while time.perf_counter() < stop_at:
            async with session.get(url) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"{url}: HTTP {resp.status}")
                async for piece, _ in resp.content.iter_chunks():
                    received += len(piece)

    began, cpu = time.perf_counter(), cpu_seconds(pid)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    spent = cpu_seconds(pid) - cpu
    return Slice(received / 1e6 / (time.perf_counter() - began), spent / (received / 1e9))


async def view_table(
    session: aiohttp.ClientSession,
    paths: dict[str, Server | None],
    concurrencies: Sequence[int],
    seconds: float,
    megabytes: int,
) -> str:
    """`paths`: direct, via (the balancer) and haproxy (None: not
    installed); all serve the same file."""
    query = {"direct": "", "via": "&subfolder=@gpu0", "haproxy": ""}
    present = {name: server for name, server in paths.items() if server is not None}
    balancer = present["via"][1]
    rss_before = process_rss_mb(balancer)
    rows = []
    for concurrency in concurrencies:
        rounds: list[dict[str, Slice]] = []
        for _ in range(ROUNDS):
            done = {}
            for name, (base, pid) in present.items():
                url = f"{base}/view?filename={FILENAME}&type=output{query[name]}"
                done[name] = await measure_slice(session, url, pid, concurrency, seconds / ROUNDS)
            rounds.append(done)
        rows.append(_row(concurrency, rounds))
    rss_after = process_rss_mb(balancer)
    headers = ["conc", "direct MB/s", "via MB/s", "haproxy MB/s", "via/direct", "via/haproxy"]
    headers += ["via CPU s/GB", "haproxy CPU s/GB", "CPU via/haproxy"]
    note = (
        f"\n(GET /view of a {megabytes} MB file; {ROUNDS} rounds of {seconds / ROUNDS:g} s"
        " per path, taking turns; MB/s and CPU s/GB the mean of the rounds',"
        " ratios their median; CPU: the serving process's user+system time per GB;"
        f" balancer RSS {rss_before:.1f} MB before, {rss_after:.1f} MB after;"
        " goal: via/haproxy 0.95 or better)"
    )
    if "haproxy" not in present:
        note += "\n(HAProxy is not installed here: its columns are not measured)"
    return table(headers, rows) + note


def _row(concurrency: int, rounds: list[dict[str, Slice]]) -> list[object]:
    def of(name: str, cpu: bool) -> list[float]:
        return [r[name].cpu_per_gb if cpu else r[name].mb_per_s for r in rounds]

    def mean(name: str, cpu: bool = False) -> str:
        if name not in rounds[0]:
            return "-"
        return f"{statistics.fmean(of(name, cpu)):.{2 if cpu else 0}f}"

    def ratio(name: str, cpu: bool = False) -> str:
        if name not in rounds[0]:
            return "-"
        pairs = zip(of("via", cpu), of(name, cpu), strict=True)
        ratios = [via / other for via, other in pairs if other > 0]  # 0: under a clock tick
        return f"{statistics.median(ratios):.2f}" if ratios else "-"

    rates = [mean(name) for name in PATHS]
    cpu = [mean("via", cpu=True), mean("haproxy", cpu=True), ratio("haproxy", cpu=True)]
    return [concurrency, *rates, ratio("direct"), ratio("haproxy"), *cpu]
