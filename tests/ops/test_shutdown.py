"""`serve` in a real process: SIGTERM lets in-flight requests finish and exits 0;
SIGHUP reloads the file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from balancer.bench.harness import free_port, wait_ready

# Seconds any wait here may take: only bounds a hang (a loaded machine is slow).
HANG_BOUND = 60.0


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
        # Generous: on a loaded machine a probe or the test's next step can
        # take seconds; no figure here is what the test checks.
        "probe": {"interval": "200ms", "stale_after": "30s", "timeout": "30s"},
        # In-flight requests may take this long: the test un-hangs the
        # backend only after it saw the balancer stop listening.
        "shutdown": {"timeout": f"{HANG_BOUND:g}s"},
    }
    path.write_text(json.dumps(doc))


async def status(session: aiohttp.ClientSession, front: str) -> dict[str, Any]:
    async with session.get(front + "/balancer/status") as resp:
        doc: dict[str, Any] = await resp.json()
        return doc


async def until_state(
    session: aiohttp.ClientSession, front: str, want: dict[str, str], timeout: float = HANG_BOUND
) -> None:
    async def reached() -> bool:
        rows = {r["name"]: r["state"] for r in (await status(session, front))["backends"]}
        return rows == want

    await until(reached, f"backends {want}", timeout)


async def until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = HANG_BOUND
) -> None:
    """Poll another process (there is no event to wait on across processes)
    until `condition` holds; `timeout` only bounds a hang."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


async def set_faults(session: aiohttp.ClientSession, backend: str, **faults: Any) -> None:
    async with session.post(backend + "/_emulator/faults", json=faults) as resp:
        assert resp.status == 200


async def holds(session: aiohttp.ClientSession, backend: str, path: str) -> bool:
    async with session.get(backend + "/_emulator/state") as resp:
        return path in (await resp.json())["held"]


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # queued as the listener closed: the next try is refused
        return False
    writer.close()
    await writer.wait_closed()
    return False


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
        code = await asyncio.get_running_loop().run_in_executor(None, serve.wait, HANG_BOUND)
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

    # SIGTERM while a proxied request waits on the backend: it still gets its answer.
    await set_faults(session, backend, hang=True)
    slow = asyncio.create_task(session.get(front + "/features"))  # passed through
    await until(lambda: holds(session, backend, "/features"), "the backend holds the request")
    serve.send_signal(signal.SIGTERM)
    await until(lambda: refused(port), "the balancer stops listening")
    await set_faults(session, backend, hang=False)
    resp = await asyncio.wait_for(slow, HANG_BOUND)
    assert resp.status == 200
    assert "supports_preview_metadata" in await resp.json()
