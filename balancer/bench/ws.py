"""`comfyui-balancer bench ws`: event latency and memory with 1,000 sockets.

Processes, all on 127.0.0.1: 8 emulated backends, one balancer, one holder
(`python -m balancer.bench.hold`) that keeps N-k idle client sockets open on
the balancer, and this process, which holds k sample sockets on the balancer
plus one socket straight to each backend. The sample sockets are opened
between chunks of the holder's, so they sit spread through the balancer's
fan-out order rather than all first or all last.

Added latency (broadcast events). ComfyUI broadcasts what a prompt without a
`client_id` produces (progress_state, progress, binary previews) to every
socket of that backend, and the balancer relays such events to every client
socket. A prompt posted *through* the balancer always reaches its backend with
the balancer's channel id as `client_id`, so the backend would send its events
to the channel only and a direct socket would see none of them. The burst is
therefore posted straight to the backends, without `client_id`: each backend
then writes every event to its direct socket and to the balancer's channel at
the same moment, and the balancer relays it to all 1,000 client sockets (the
same read, route and fan-out path as for its own jobs). Added latency = arrival
on a sample socket minus arrival of the same event on the direct socket, on
this process's perf_counter; p50/p99/max over all (event, sample socket) pairs.
Every job has its own image colour, so its preview frames are unique too. Two
phases: jobs paced `--gap` ms apart, then a burst posted all at once; the
emulated jobs take about a millisecond, so the burst is a flood of events no
real GPU pool produces, and measures backlog more than latency.

End-to-end (targeted jobs), with a `client_id`: posted straight to the
backends with each backend's direct socket as client, or through the
balancer with the sample sockets as clients; time from POST to `executing`
with node null on that socket. One at a time, a direct job and a job through
the balancer in turn; then a burst each way. This covers the balancer's own
path (dispatch, routing by prompt_id, relaying the events), and in the burst
queue wait on the backends.

Memory: the balancer's VmRSS from /proc/<pid>/status after start-up, with the
sockets open, and after the bursts.

Cores (`balancer.bench.cores`): the balancer and the floor relay run on the
first core this process may use, the emulators, the holders and this process
on the others, for the direct path and the balancer's path alike, so the
balancer's added work is not measured together with the CPU it would take
from the backends (GPU servers on machines of their own). The floor and its
holder are stopped after the paced phase, the only one they are compared in:
the floor relays every backend `status` to its 1,000 sockets, which loaded
the phases after it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from balancer.bench.cores import pin_self, scheduled_ms, split_cores
from balancer.bench.floor import cpu_seconds, floor_process
from balancer.bench.harness import (
    child,
    free_port,
    process_rss_mb,
    table,
    wait_ready,
    write_balancer_config,
)
from balancer.bench.hold import HolderProcess, holder
from balancer.bench.ws_probe import (
    Probe,
    close_all,
    connect,
    median,
    ms,
    pair,
    quantile,
    quiet,
    until,
)
from balancer.bench.ws_report import Phase, cpu_rows, per_pair, ratio

BACKENDS = 8


def workflow(color: int) -> dict[str, Any]:
    """tests/fixtures/workflows/progress_ws.json with its own colour."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}},
    }


async def post(session: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> str:
    async with session.post(base + "/prompt", json=body) as resp:
        answer = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"POST {base}/prompt: HTTP {resp.status} {answer}")
        prompt_id: str = answer["prompt_id"]
        return prompt_id


async def idle(session: aiohttp.ClientSession, backends: list[str]) -> bool:
    for base in backends:
        async with session.get(base + "/queue") as resp:
            queue = await resp.json()
        if queue["queue_running"] or queue["queue_pending"]:
            return False
    return True


class Bench:
    def __init__(self, session: aiohttp.ClientSession, backends: list[str], front: str) -> None:
        self.session = session
        self.backends = backends
        self.front = front
        self.direct: list[Probe] = []
        self.sampled: list[Probe] = []
        self.colors = iter(range(1, 1 << 24))

    async def open_sockets(self, hold: HolderProcess, total: int, samples: int) -> None:
        for i, base in enumerate(self.backends):
            ws_url = base.replace("http", "ws", 1) + "/ws"
            self.direct.append(await connect(self.session, ws_url, f"direct-{i}"))
        front_ws = self.front.replace("http", "ws", 1) + "/ws"
        held = total - samples
        for i in range(samples):
            chunk = held * (i + 1) // (samples + 1) - held * i // (samples + 1)
            await hold.ask(f"open {chunk}")
            self.sampled.append(await connect(self.session, front_ws, f"sample-{i}"))
        answer = await hold.ask(f"open {held - held * samples // (samples + 1)}")
        if answer != f"open {held}":
            raise RuntimeError(f"the holder answered {answer!r}")

    async def warm_up(self) -> None:
        """One job per backend until every sample socket sees it: channels are up."""
        for base in self.backends:
            for _ in range(3):
                body = {"prompt": workflow(next(self.colors))}
                prompt_id = await post(self.session, base, body)
                await until(partial(self.all_saw, prompt_id), 30, f"warm-up from {base}")
        await self.settle()

    def all_saw(self, prompt_id: str) -> bool:
        return all(p.saw_prompt(prompt_id) for p in self.sampled)

    async def settle(self) -> None:
        await until(lambda: idle(self.session, self.backends), 120, "the backends to finish")
        await quiet(self.direct + self.sampled, 0.5, 60)

    def caught_up(self) -> bool:
        expected = sum(len(p.arrivals) for p in self.direct)
        return all(len(p.arrivals) >= expected for p in self.sampled if not p.closed)

    async def broadcast(self, jobs: int, gap: float) -> Phase:
        """`jobs` jobs without client_id straight to the backends, in turn,
        `gap` seconds apart (0: all at once); pairs of each event's arrivals."""
        for probe in self.direct + self.sampled:
            probe.reset()
        began = time.perf_counter()
        posts = []
        for i in range(jobs):
            body = {"prompt": workflow(next(self.colors))}
            posts.append(asyncio.create_task(post(self.session, self.backends[i % BACKENDS], body)))
            if gap:
                await asyncio.sleep(gap)
        await asyncio.gather(*posts)
        await self.settle()
        with contextlib.suppress(RuntimeError):  # reported as missing pairs
            await until(self.caught_up, 120, "the balancer's sockets to catch up")
        seconds = max(p.last for p in self.sampled) - began
        added, missing = pair(self.direct, self.sampled)
        dropped = sum(p.closed for p in self.sampled)
        return Phase(jobs, seconds, added, missing, dropped)

    async def targeted_one(self, i: int, via: bool) -> float:
        """POST one job with a client_id, seconds until its done signal."""
        if via:
            base, probe = self.front, self.sampled[i % len(self.sampled)]
        else:
            probe = self.direct[i % len(self.direct)]
            base = self.backends[i % len(self.backends)]
        body = {"prompt": workflow(next(self.colors)), "client_id": probe.sid}
        began = time.perf_counter()
        prompt_id = await post(self.session, base, body)
        await until(lambda: prompt_id in probe.done, 120, f"{prompt_id} to finish")
        return probe.done[prompt_id] - began

    async def targeted_burst(self, jobs: int, via: bool) -> list[float]:
        times = await asyncio.gather(*(self.targeted_one(i, via) for i in range(jobs)))
        await self.settle()
        return list(times)

    async def targeted_paced(self, jobs: int) -> tuple[list[float], list[float]]:
        """One job at a time, direct and through the balancer in turn (so
        both ways see the same load on this shared machine): no queue wait
        anywhere, so the difference is what the balancer's path adds per job."""
        direct, via = [], []
        for i in range(jobs):
            direct.append(await self.targeted_one(i, via=False))
            via.append(await self.targeted_one(i, via=True))
        return direct, via


async def measure(args: argparse.Namespace) -> str:
    ports, port, floor_port = [free_port() for _ in range(BACKENDS)], free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    config = write_balancer_config(folder, ports, port)
    backends = [f"http://127.0.0.1:{p}" for p in ports]
    front = f"http://127.0.0.1:{port}"
    rss: dict[str, float] = {}
    placement = split_cores()
    side = placement.balancer if placement is not None else None
    if placement is not None:
        pin_self(placement.rest)  # the emulators and holders started below too
    with contextlib.ExitStack() as stack:
        for i, p in enumerate(ports):
            emulate = ["emulate", "--port", str(p), "--time-scale", str(args.time_scale)]
            stack.enter_context(child([*emulate, "--base-dir", str(folder / f"gpu{i}")]))
        balancer = stack.enter_context(child(["serve", "--config", str(config)], cores=side))
        floor_side = contextlib.AsyncExitStack()
        floor = floor_side.enter_context(floor_process(floor_port, backends, side))
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session, floor_side:
            for base in backends:
                await wait_ready(session, base + "/queue")
            await wait_ready(session, front + "/balancer/health")
            await wait_ready(session, f"http://127.0.0.1:{floor_port}/health")
            await asyncio.sleep(1.0)  # let start-up settle before the first reading
            rss["start"] = process_rss_mb(balancer.pid)
            bench = Bench(session, backends, front)
            hold_floor = await floor_side.enter_async_context(
                holder(f"ws://127.0.0.1:{floor_port}/ws")
            )
            async with holder(front + "/ws") as hold:
                try:
                    await hold_floor.ask(f"open {args.sockets}")
                    await bench.open_sockets(hold, args.sockets, args.samples)
                    await asyncio.sleep(1.0)
                    rss["sockets"] = process_rss_mb(balancer.pid)
                    await bench.warm_up()
                    pids = (balancer.pid, floor.pid)
                    cpu = [cpu_seconds(pid) for pid in pids]
                    paced = await bench.broadcast(args.paced, args.gap / 1000)
                    cpu = [cpu_seconds(pid) - was for pid, was in zip(pids, cpu, strict=True)]
                    await floor_side.aclose()  # the floor's 1,000 sockets: not beside what follows
                    burst = await bench.broadcast(args.jobs, 0)
                    sched_before = scheduled_ms(balancer.pid)
                    one_direct, one_via = await bench.targeted_paced(args.targeted)
                    sched = sched_before + scheduled_ms(balancer.pid)
                    direct = await bench.targeted_burst(args.targeted, via=False)
                    via = await bench.targeted_burst(args.targeted, via=True)
                    rss["burst"] = process_rss_mb(balancer.pid)
                    frames = await hold.ask("frames")
                finally:
                    await close_all(bench.direct + bench.sampled)
    per_socket_kb = (rss["sockets"] - rss["start"]) * 1024 / args.sockets
    rows: list[list[object]] = [
        *paced.rows(f"broadcast, one job per {args.gap:g} ms", args.samples),
        *burst.rows("broadcast burst, all at once", args.samples),
        *cpu_rows(cpu[0] / args.paced, cpu[1] / args.paced, args.sockets),
        ["targeted jobs one at a time, in turn", f"{args.targeted} jobs each way", ""],
        ["  p50 direct / via / ratio", ratio(median(one_direct), median(one_via)), ""],
        ["  p50 added by the balancer", ms(median(one_via) - median(one_direct)), ""],
        ["  balancer ran / waited for a core", per_pair(sched, args.targeted), ""],
        ["targeted jobs in a burst, POST to done", f"{args.targeted} jobs each way", ""],
        ["  p50 direct / via / ratio", ratio(median(direct), median(via)), ""],
        ["  p99 direct / via / ratio", ratio(quantile(direct, 0.99), quantile(via, 0.99)), ""],
        ["balancer RSS at start", f"{rss['start']:.1f} MB", ""],
        [f"  with {args.sockets} sockets", f"{rss['sockets']:.1f} MB", "< 200 MB"],
        ["  per socket", f"{per_socket_kb:.1f} KB", ""],
        ["  after the bursts", f"{rss['burst']:.1f} MB", ""],
        ["holder frames received", frames.split()[-1], ""],
    ]
    where = placement.describe() if placement is not None else "one core for all"
    note = (
        f"({BACKENDS} emulators at time scale {args.time_scale}, {args.samples} sample sockets;"
        f" {where})"
    )
    return table(["measure", "value", "target"], rows) + "\n" + note


def run_ws_bench(args: argparse.Namespace) -> int:
    print(asyncio.run(measure(args)))
    return 0
