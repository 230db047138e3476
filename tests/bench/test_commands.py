"""Every `bench` sub-command names a function that exists; the store one runs."""

from __future__ import annotations

import argparse
import importlib
import re

import pytest

from balancer.bench import run_bench
from balancer.bench.haproxy import HAPROXY, haproxy_binary
from balancer.bench.nginx import NGINX
from balancer.bench.redisserver import RedisServer, redis_server_binary
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


def ratio_of_rounded(top: float, bottom: float, ratio: float) -> bool:
    """Whether `ratio` (printed to 2 places) is top/bottom for some values that
    print as `top` and `bottom` (whole numbers): at a few requests a second the
    rounding of the rates alone moves their ratio by more than 1 %."""
    low = (top - 0.5) / (bottom + 0.5)
    high = (top + 0.5) / max(bottom - 0.5, 1e-9)
    return low - 0.005 <= ratio <= high + 0.005


def test_bench_proxy_replicas_prints_one_against_three(
    capsys: pytest.CaptureFixture[str], redis_server: RedisServer
) -> None:
    """1 replica vs 3 (separate processes on a real Redis), the ratio beside."""
    argv = ["bench", "proxy", "--replicas", "3", "--seconds", "0.2", "--concurrency", "3"]
    assert run_bench(build_parser().parse_args([*argv, "--backends", "1"])) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = "route conc 1 rps 3 rps 3/1 1 rps/cpu 3 rps/cpu 3/1 cpu"
    headers += " 1 redis/req 3 redis/req 1 gen 3 gen 1 p50 3 p50"
    assert lines[0].split() == headers.split()
    rows = [line.split() for line in lines[2:4]]
    assert [row[1] for row in rows] == ["/history/{id}", "/queue"]
    for row in rows:
        one, three, ratio = float(row[3]), float(row[4]), float(row[5])
        assert one > 0 and three > 0
        assert ratio_of_rounded(three, one, ratio)
        per_cpu_one, per_cpu_three, cpu_ratio = float(row[6]), float(row[7]), float(row[8])
        assert per_cpu_one > 0 and per_cpu_three > 0
        assert ratio_of_rounded(per_cpu_three, per_cpu_one, cpu_ratio)
        assert float(row[9]) >= 0 and float(row[10]) >= 0  # Redis commands per request


def test_bench_schedule_replicas_prints_one_against_three(
    capsys: pytest.CaptureFixture[str], redis_server: RedisServer
) -> None:
    """The same trace through 1 replica and 3: every job's latency measured."""
    argv = [
        "bench",
        "schedule",
        "--replicas",
        "3",
        "--jobs",
        "12",
        "--loads",
        "0.5",
        "--repeat",
        "2",
    ]
    args = build_parser().parse_args([*argv, "--fast", "1", "--slow", "1", "--short-ms", "10"])
    assert run_bench(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["load", "jobs", "1", "mean"]
    load, jobs, one, _, three, _, ratio = lines[2].split()[:7]
    assert (load, jobs) == ("50%", "12")
    assert float(ratio) == pytest.approx(float(three) / float(one), abs=0.01 + 0.01 * float(ratio))
    assert len(lines[2].split()[-1].split("/")) == 2  # a ratio per interleaved pair of runs
    assert "late binding" in lines[3] and "store.kind redis" in lines[3]
    split = lines[4]  # every process group's CPU per job, on each side
    assert split.startswith("at 50%, cpu ms/job of each process group, 1: replicas ")
    sides = split.split("; ")
    assert [side.split(":")[0][-1] for side in sides] == ["1", "3"]
    for side in sides:
        spent = dict(re.findall(r"(replicas|redis|emulators|load generator) ([\d.]+)", side))
        assert set(spent) == {"replicas", "redis", "emulators", "load generator"}
        assert float(spent["replicas"]) > 0 and float(spent["emulators"]) > 0
        assert len(side.split("load average ")[1].split("/")) == 2  # one per run


def test_bench_proxy_prints_view_rows_beside_haproxy(capsys: pytest.CaptureFixture[str]) -> None:
    """/view of a large file: direct, through the balancer and through HAProxy
    (or a note that it is not installed) in one run, the ratios beside; the
    small GETs with nginx's rate beside (or a note)."""
    argv = ["bench", "proxy", "--seconds", "0.1", "--concurrency", "1", "--backends", "1"]
    argv += ["--view-mb", "2", "--view-concurrency", "1", "--view-seconds", "0.5"]
    assert run_bench(build_parser().parse_args(argv)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:9] == [
        "route",
        "conc",
        "direct",
        "rps",
        "via",
        "rps",
        "ratio",
        "nginx",
        "rps",
    ]
    for small in (lines[2].split()[-13:], lines[3].split()[-13:]):  # /history/{id}, /queue
        via, nginx, via_nginx = float(small[1]), small[3], small[4]
        direct_cpu, via_cpu, nginx_cpu = small[-3:]
        assert float(direct_cpu) >= 0 and float(via_cpu) >= 0
        assert (nginx_cpu == "-") == (nginx == "-")
        if NGINX.installed() is not None:
            ratio = float(via_nginx)
            assert ratio == pytest.approx(via / float(nginx), abs=0.01 + 0.01 * ratio)
        else:
            assert nginx == via_nginx == "-" and "nginx is not installed" in out
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["conc", "direct"])
    headers = "conc direct MB/s via MB/s haproxy MB/s via/direct via/haproxy"
    headers += " via CPU s/GB haproxy CPU s/GB CPU via/haproxy"
    assert lines[at].split() == headers.split()
    row = lines[at + 2].split()
    assert float(row[1]) > 0 and float(row[2]) > 0 and float(row[4]) > 0
    if haproxy_binary() is not None:
        assert float(row[3]) > 0 and float(row[5]) > 0 and float(row[7]) >= 0
    else:
        assert row[3] == row[5] == row[7] == row[8] == "-" and "HAProxy is not installed" in out
    assert "balancer RSS" in out


def test_bench_slow_counts_answers_by_status(capsys: pytest.CaptureFixture[str]) -> None:
    """A slow backend: direct, nginx, HAProxy (where installed) and the
    balancer, on its cached /object_info and on a route it passes through,
    each answer counted by status, the rate beside nginx's on the same route."""
    argv = ["bench", "slow", "--seconds", "0.3", "--clients", "2", "--cost", "0.01"]
    assert run_bench(build_parser().parse_args(argv)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert " ".join(lines[0].split()) == "route path 200 503 other 200/s vs nginx p50 s"
    rows = {(line.split()[0], line.rsplit(maxsplit=6)[0].split(maxsplit=1)[1].strip()):
            line.split()[-6:] for line in lines[2:] if line[:1] != "("}  # fmt: skip
    names = ["direct", "balancer"] + [r.binary for r in (NGINX, HAPROXY) if r.installed()]
    expected = {(route, name) for route in ("/object_info", "/experiment/models") for name in names}
    expected |= {("/object_info", "balancer, backend busy"), ("/object_info", "direct, beside it")}
    assert expected <= set(rows)
    for key in expected:
        ok, _, _, rate = rows[key][:4]
        assert int(ok) > 0 and float(rate) > 0
    for route in ("/object_info", "/experiment/models"):
        assert rows[route, "direct"][1] == rows[route, "direct"][2] == "0"  # never refused
        if NGINX.installed() is not None:
            ratio = float(rows[route, "balancer"][3]) / float(rows[route, "nginx"][3])
            assert float(rows[route, "balancer"][4]) == pytest.approx(
                ratio, abs=0.01 + 0.01 * ratio
            )
