"""`serve` in a real process: SIGTERM lets in-flight requests finish and exits 0;
SIGHUP reloads the file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from balancer.bench.harness import free_port, wait_ready


@contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "balancer", *args], stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def write_config(path: Path, backends: list[dict[str, Any]], port: int) -> None:
    doc = {
        "listen": {"host": "127.0.0.1", "port": port},
        "backends": backends,
        "probe": {"interval": "200ms", "stale_after": "5s", "timeout": "5s"},
        "shutdown": {"timeout": "10s"},
    }
    path.write_text(json.dumps(doc))


async def status(session: aiohttp.ClientSession, front: str) -> dict[str, Any]:
    async with session.get(front + "/balancer/status") as resp:
        doc: dict[str, Any] = await resp.json()
        return doc


async def until_state(
    session: aiohttp.ClientSession, front: str, want: dict[str, str], timeout: float = 20.0
) -> None:
    async def poll() -> None:
        while True:
            rows = {r["name"]: r["state"] for r in (await status(session, front))["backends"]}
            if rows == want:
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
async def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    backend_port, port = free_port(), free_port()
    emulate = ["emulate", "--port", str(backend_port), "--time-scale", "0"]
    emulate += ["--base-dir", str(tmp_path / "gpu0")]
    config = tmp_path / "balancer.yaml"
    write_config(config, [{"name": "gpu0", "url": f"http://127.0.0.1:{backend_port}"}], port)
    backend, front = f"http://127.0.0.1:{backend_port}", f"http://127.0.0.1:{port}"
    with (
        process(emulate, tmp_path / "emulator.log"),
        process(["serve", "--config", str(config)], tmp_path / "serve.log") as serve,
    ):
        async with aiohttp.ClientSession() as session:
            await exercise(session, serve, config, backend, front, port)
        code = await asyncio.get_running_loop().run_in_executor(None, serve.wait, 15)
        assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]


async def exercise(
    session: aiohttp.ClientSession,
    serve: subprocess.Popen[bytes],
    config: Path,
    backend: str,
    front: str,
    port: int,
) -> None:
    await wait_ready(session, backend + "/queue")
    await wait_ready(session, front + "/balancer/health")
    await until_state(session, front, {"gpu0": "up"})

    # SIGHUP: a second backend (the same emulator under another name) appears.
    write_config(
        config,
        [
            {"name": "gpu0", "url": backend},
            {"name": "twin", "url": backend, "drain": True},
        ],
        port,
    )
    os.kill(serve.pid, signal.SIGHUP)
    await until_state(session, front, {"gpu0": "up", "twin": "draining"})

    async with session.post(backend + "/_emulator/faults", json={"http_delay": 1.5}) as r:
        assert r.status == 200
    slow = asyncio.create_task(session.get(front + "/object_info"))
    await asyncio.sleep(0.4)  # the request is now waiting on the slow backend
    serve.send_signal(signal.SIGTERM)
    resp = await asyncio.wait_for(slow, 15)
    assert resp.status == 200
    assert "KSampler" in await resp.json()
