"""Benchmarks: commands that print a table, never tests."""

from __future__ import annotations

import argparse


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True)
    proxy = sub.add_parser("proxy", help="balancer vs direct: req/s and p50/p99")
    proxy.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    proxy.add_argument("--concurrency", default="1,32")


def run_bench(args: argparse.Namespace) -> int:
    from balancer.bench.proxy import run_proxy_bench

    return run_proxy_bench(args)
