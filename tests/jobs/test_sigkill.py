"""A balancer killed with SIGKILL and started again loses no accepted job
(SQLite: the same file; Redis: the same Redis)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from store_support import Reopen
from support import colored

from balancer.bench.harness import free_port, wait_ready
from balancer.emulator import EMULATOR, EmulatorOptions, create_emulator_app

# Seconds a wait on the child may take: only bounds a hang (a loaded machine is slow).
HANG_BOUND = 60.0


def start_balancer(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "balancer", "serve", "--config", str(config)], stderr=out
        )


async def post_until_accepted(session: aiohttp.ClientSession, url: str, body: Any) -> str:
    """The first probes take a moment after start: 503 until a backend is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANG_BOUND
    while True:
        async with session.post(url + "/prompt", json=body) as resp:
            if resp.status == 200:
                prompt_id: str = (await resp.json())["prompt_id"]
                return prompt_id
            assert resp.status == 503, await resp.text()
        assert loop.time() < deadline, "no backend came up"
        await asyncio.sleep(0.05)


async def all_succeed(session: aiohttp.ClientSession, url: str, ids: list[str]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANG_BOUND
    for prompt_id in ids:
        while True:
            async with session.get(f"{url}/history/{prompt_id}") as resp:
                entry = (await resp.json()).get(prompt_id)
            if entry is not None:
                assert entry["status"]["status_str"] == "success", entry["status"]
                break
            assert loop.time() < deadline, f"{prompt_id} never finished"
            await asyncio.sleep(0.05)


async def test_sigkill_and_restart_loses_no_accepted_job(
    tmp_path: Path, reopen_store: Reopen
) -> None:
    servers = []
    for name in ("gpu0", "gpu1"):
        app = create_emulator_app(
            EmulatorOptions(name=name, base_dir=tmp_path / name, time_scale=0)
        )
        server = TestServer(app)
        await server.start_server()
        servers.append((name, server, app[EMULATOR]))
    port = free_port()
    config = tmp_path / "balancer.yaml"
    config.write_text(
        json.dumps(
            {
                "listen": {"port": port},
                "backends": [
                    {"name": n, "url": str(s.make_url("")).rstrip("/")} for n, s, _ in servers
                ],
                "probe": {"interval": "100ms"},
                "store": reopen_store.config(),
                "data_dir": str(tmp_path / "data"),
            }
        )
    )
    url, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    for _, _, emulator in servers:
        emulator.pause()
    first = start_balancer(config, log)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url + "/balancer/health")
            ids = [
                await post_until_accepted(session, url, {"prompt": colored(i)}) for i in range(10)
            ]
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            second = start_balancer(config, log)
            try:
                await wait_ready(session, url + "/balancer/health")
                for _, _, emulator in servers:
                    emulator.resume()
                await all_succeed(session, url, ids)
            finally:
                second.terminate()
                # Not a blocking wait: the backends live on this loop, and the
                # balancer may be fetching a last history entry from them.
                await asyncio.to_thread(second.wait, 10)
    finally:
        if first.poll() is None:
            first.kill()
        for _, server, _ in servers:
            await server.close()
    runs = sorted(i for _, _, e in servers for i in e.executed)
    assert runs == sorted(ids), "every accepted job ran, and exactly once"
