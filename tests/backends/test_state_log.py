"""Every change of a backend's health is one log line with its reason, where
the change happens; an unreachable backend is visible from its first probe."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

from balancer.backends.prober import pool_summary
from balancer.backends.registry import Registry
from balancer.backends.state import Backend, LoadSnapshot
from balancer.bench.harness import free_port
from balancer.config.backend_settings import BackendSettings, ProbeSettings

PROBE = ProbeSettings(unhealthy_after=3, healthy_after=1)
REFUSED = "Connection refused (127.0.0.1:1)"


def snap() -> LoadSnapshot:
    return LoadSnapshot(0.0, (), (), 100, 50)


def backend() -> Backend:
    return Backend(BackendSettings(name="gpu0", url="http://127.0.0.1:1"), 0)


def lines(logs: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(entry["event"], entry.get("reason")) for entry in logs]


def test_a_backend_never_up_is_reported_down_at_its_first_failure_only() -> None:
    b = backend()
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            b.record_failure(REFUSED, PROBE)
    assert lines(logs) == [("backend_down", REFUSED)]
    assert logs[0]["backend"] == "gpu0"


def test_an_up_backend_logs_its_first_failure_then_going_down_then_up() -> None:
    b = backend()
    b.record_success(snap(), PROBE)
    with structlog.testing.capture_logs() as logs:
        b.record_failure("TimeoutError: ", PROBE)
        b.record_failure("TimeoutError: ", PROBE)
        b.record_failure(REFUSED, PROBE)
        b.record_failure(REFUSED, PROBE)
        b.record_success(snap(), PROBE)
        b.record_success(snap(), PROBE)
    assert lines(logs) == [
        ("backend_probe_failed", "TimeoutError: "),
        ("backend_down", REFUSED),
        ("backend_up", None),
    ]


def test_a_refused_dispatch_reports_the_backend_down_once() -> None:
    b = backend()
    b.record_success(snap(), PROBE)
    with structlog.testing.capture_logs() as logs:
        b.mark_down(REFUSED)
        b.record_failure(REFUSED, PROBE)
    assert lines(logs) == [("backend_down", REFUSED)]
    assert logs[0]["seen_by"] == "dispatch"


def test_pool_summary_names_what_is_up_and_why_the_rest_is_not() -> None:
    registry = Registry(
        (
            BackendSettings(name="gpu0", url="http://127.0.0.1:1"),
            BackendSettings(name="gpu1", url="http://127.0.0.1:2"),
            BackendSettings(name="gpu2", url="http://127.0.0.1:3"),
        )
    )
    gpu0, gpu1, _ = registry
    gpu0.record_success(snap(), PROBE)
    gpu1.record_failure(REFUSED, PROBE)
    assert pool_summary(registry) == {
        "summary": "1 of 3 backends up",
        "up": ["gpu0"],
        "down": {"gpu1": REFUSED, "gpu2": "not probed yet"},
    }


async def test_serve_with_unreachable_backends_says_so_at_start(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]  # nothing listens on these any more
    config = tmp_path / "balancer.yaml"
    config.write_text(
        "backends:\n"
        + "".join(
            f"  - {{name: gpu{i}, url: 'http://127.0.0.1:{p}'}}\n" for i, p in enumerate(ports)
        )
        + "store: {kind: memory}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "balancer", "serve", "--config", str(config),
        "--port", str(free_port()),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    events: list[dict[str, Any]] = []
    try:
        while not events or events[-1]["event"] != "pool":
            raw = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert raw, f"serve ended early: {events}"
            events.append(json.loads(raw))
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 20)
    down = {e["backend"]: e["reason"] for e in events if e["event"] == "backend_down"}
    refused = {f"gpu{i}": f"Connection refused (127.0.0.1:{p})" for i, p in enumerate(ports)}
    assert down == refused
    assert events[-1]["summary"] == "0 of 2 backends up"
    assert events[-1]["down"] == refused
    assert proc.returncode == 0
