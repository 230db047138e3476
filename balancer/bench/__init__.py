"""Benchmarks: commands that print a table, never tests."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from balancer.helpformat import DefaultsHelp


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        """A benchmark whose --help shows each option's default."""
        return sub.add_parser(name, help=help, description=help, formatter_class=DefaultsHelp)

    proxy = command("proxy", help="balancer vs direct: req/s and p50/p99")
    proxy.set_defaults(runner="balancer.bench.proxy:run_proxy_bench")
    proxy.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    proxy.add_argument("--concurrency", default="1,32", help="client concurrencies, one row each")
    proxy.add_argument(
        "--backends", type=int, default=2, help="emulated backends behind the balancer"
    )
    proxy.add_argument("--replicas", type=int, default=1,
                       help="above 1: 1 replica vs this many on one Redis, not direct")  # fmt: skip
    proxy.add_argument("--view-mb", type=int, default=50,
                       help="size of the file /view rows fetch (0: no /view rows)")  # fmt: skip
    proxy.add_argument("--view-concurrency", default="1,4",
                       help="client concurrencies of the /view rows")  # fmt: skip
    proxy.add_argument("--view-seconds", type=float, default=10.0,
                       help="per /view measurement, split over interleaved rounds")  # fmt: skip
    slow = command("slow", help="a slow backend: direct, nginx, HAProxy, the balancer")
    slow.set_defaults(runner="balancer.bench.slow:run_slow_bench")
    slow.add_argument("--seconds", type=float, default=15.0, help="per row")
    slow.add_argument("--clients", type=int, default=32, help="concurrent callers per row")
    slow.add_argument("--cost", type=float, default=0.1,
                      help="seconds each call holds the emulator's event loop")  # fmt: skip
    upload = command("upload", help="time placement adds before dispatch (10 MB input)")
    upload.set_defaults(runner="balancer.bench.upload:run_upload_bench")
    upload.add_argument("--rounds", type=int, default=10, help="prompts measured each way")
    upload.add_argument("--megabytes", type=float, default=10.0, help="size of the input image")
    outputs = command("outputs", help="time the output sink adds to a job's end (1 MB, 50 MB)")
    outputs.set_defaults(runner="balancer.bench.outputs:run_outputs_bench")
    outputs.add_argument("--runs", type=int, default=5, help="jobs per size and mode")
    ws = command("ws", help="1,000 sockets: added event latency and balancer memory")
    ws.set_defaults(runner="balancer.bench.ws:run_ws_bench")
    ws.add_argument("--sockets", type=int, default=1000, help="client sockets on the balancer")
    ws.add_argument("--samples", type=int, default=10, help="of which this process measures")
    ws.add_argument("--paced", type=int, default=40, help="paced broadcast jobs")
    ws.add_argument("--gap", type=float, default=100.0, help="ms between paced jobs")
    ws.add_argument("--jobs", type=int, default=200, help="broadcast burst size")
    ws.add_argument("--targeted", type=int, default=80, help="targeted jobs each way")
    ws.add_argument("--time-scale", type=float, default=0.05, help="emulator time scale")
    ops = command("ops", help="one probe round and /metrics with many backends")
    ops.set_defaults(runner="balancer.bench.ops:run_ops_bench")
    ops.add_argument("--backends", type=int, default=200, help="emulated backends registered")
    ops.add_argument("--repeat", type=int, default=20, help="runs of each measurement")
    ops.add_argument("--steady", type=float, default=60.0,
                     help="seconds the balancer's CPU is read while it probes the backends, "
                     "each in its own process (0: skip); at least probe.idle_interval (60 s), "
                     "or an idle backend's read may fall outside the window")  # fmt: skip
    ops.add_argument("--stats-interval", type=float, default=0.0,
                     help="its probe.stats_interval (default: 0, every probe)")  # fmt: skip
    schedule = command("schedule", help="late binding vs send-at-once vs round robin")
    schedule.set_defaults(runner="balancer.bench.schedule:run_schedule_bench")
    schedule.add_argument("--jobs", type=int, default=None,
                          help="per run (default: 2000; with --replicas: 600)")  # fmt: skip
    schedule.add_argument("--loads", type=lambda s: [float(x) for x in s.split(",")],
                          default="0.7,0.9", help="fractions of capacity")  # fmt: skip
    schedule.add_argument("--short-ms", type=float, default=None,
                          help="ms, short job (default: 25; --replicas: 100)")  # fmt: skip
    schedule.add_argument("--fast", type=int, default=4, help="backends at time scale 1")
    schedule.add_argument("--slow", type=int, default=4, help="backends at time scale 2")
    schedule.add_argument("--seed", type=int, default=1, help="of the arrival and job-size trace")
    schedule.add_argument("--replicas", type=int, default=1,
                          help="above 1: late binding through 1 replica vs this many, "
                          "on Redis (--policies is then not used)")  # fmt: skip
    schedule.add_argument("--repeat", type=int, default=3,
                          help="with --replicas: interleaved runs of 1 and of R")  # fmt: skip
    schedule.add_argument(
        "--policies",
        type=lambda s: s.split(","),
        default="default,pending0,expected-finish,at-once,round-robin",
        help="which rows to run",
    )

    share = command("probe-share", help="each replica probes vs one probes and shares")
    share.set_defaults(runner="balancer.bench.probe_share:run_probe_share_bench")
    share.add_argument("--replicas", type=int, default=3, help="replicas sharing one Redis")
    share.add_argument("--backends", type=int, default=64, help="emulated backends")
    share.add_argument("--seconds", type=float, default=10.0, help="settling, then measuring")
    share.add_argument("--rounds", type=int, default=200, help="sharing rounds timed")

    affinity = command("affinity", help="model residency routing: latency and model loads")
    affinity.set_defaults(runner="balancer.bench.affinity:run_affinity_bench")
    affinity.add_argument("--jobs", type=int, default=200, help="per run")
    affinity.add_argument("--load", type=float, default=0.7, help="fraction of capacity")
    affinity.add_argument("--time-scale", type=float, default=0.5, help="emulator time scale")
    affinity.add_argument("--seed", type=int, default=1, help="of the arrival and model trace")
    affinity.add_argument(
        "--repeat", type=int, default=1, help="rounds of every run, interleaved (a summary from 2)"
    )

    history = command("history", help="/history pages and /system_stats vs direct, loop stall")
    history.set_defaults(runner="balancer.bench.history:run_history_bench")
    history.add_argument("--kept", type=lambda s: [int(x) for x in s.split(",")],
                         default="10000,100000", help="kept entries, one run each")  # fmt: skip
    history.add_argument("--jobs", type=int, default=80, help="real jobs run first")
    history.add_argument("--seconds", type=float, default=3.0, help="per measurement")

    pick = command("pick", help="one routing decision (snapshot, filter, score, pick)")
    pick.set_defaults(runner="balancer.bench.pick:run_pick_bench")
    pick.add_argument("--backends", type=lambda s: [int(x) for x in s.split(",")],
                      default="8,64,512", help="pool sizes, one row each")  # fmt: skip
    pick.add_argument("--seconds", type=float, default=1.0, help="per measurement")

    memory = command("memory", help="finished jobs to the store's RSS, memory and SQLite")
    memory.set_defaults(runner="balancer.bench.memory:run_memory_bench")
    memory.add_argument("--jobs", type=lambda s: [int(x) for x in s.split(",")],
                        default="10000,50000,100000", help="checkpoints")  # fmt: skip
    memory.add_argument("--restart", type=lambda s: [int(x) for x in s.split(",")],
                        default="10000,100000",
                        help="checkpoints a balancer is restarted on (SQLite)")  # fmt: skip

    store = command("store", help="the cost of one store write, memory vs SQLite vs Redis")
    store.set_defaults(runner="balancer.bench.store:run_store_bench")
    store.add_argument("--writes", type=int, default=2000, help="writes timed per row")


def run_bench(args: argparse.Namespace) -> int:
    """Import only the chosen benchmark (`module:function`, set per sub-command)."""
    module, function = str(args.runner).split(":")
    run: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), function)
    return run(args)
