"""Every `bench` sub-command names a function that exists; the store one runs."""

from __future__ import annotations

import argparse
import importlib

import pytest

from balancer.bench import run_bench
from balancer.bench.redisserver import redis_server_binary
from balancer.cli import build_parser


def bench_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bench = commands.choices["bench"]
    sub = next(a for a in bench._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(bench_parsers()))
def test_each_bench_names_a_real_function(name: str) -> None:
    runner = bench_parsers()[name].get_default("runner")
    module, function = runner.split(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_bench_store_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "store", "--writes", "20"])
    assert run_bench(args) == 0
    out = capsys.readouterr().out
    redis = ["redis", "us"] if redis_server_binary() else []
    assert out.splitlines()[0].split() == ["write", "memory", "us", "sqlite", "us", *redis]
    assert {line.split()[0] for line in out.splitlines()[2:6]} == {
        "create",
        "transition",
        "put_pin",
        "put_history",
    }
