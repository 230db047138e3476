"""SIGKILL the balancer while it copies a job's outputs, start it again: the
copy is redone from the backend, and the job ends (nothing left waiting)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from support import colored

from balancer.bench.harness import free_port, wait_ready
from balancer.bench.s3server import BUCKET, S3Server
from balancer.emulator import EmulatorOptions, create_emulator_app


def serve(config: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        args = [sys.executable, "-m", "balancer", "serve", "--config", str(config)]
        return subprocess.Popen(args, stderr=out, env={**os.environ, **env})


async def until(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll an async check (every 50 ms) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := await check()):
        assert loop.time() < deadline, what
        await asyncio.sleep(0.05)
    return found


async def test_a_copy_cut_by_sigkill_is_redone_after_restart(s3: S3Server, tmp_path: Path) -> None:
    backend = TestServer(create_emulator_app(EmulatorOptions(name="gpu0", base_dir=tmp_path / "g")))
    await backend.start_server()
    port = free_port()
    config = tmp_path / "balancer.yaml"
    outputs = {"sink": "s3", "bucket": BUCKET, "endpoint_url": s3.endpoint}
    outputs |= {"addressing": "path", "retry_delay": "200ms", "max_attempts": 1000}
    config.write_text(
        json.dumps(
            {
                "listen": {"port": port},
                "backends": [{"name": "gpu0", "url": str(backend.make_url("")).rstrip("/")}],
                "probe": {"interval": "100ms"},
                "store": {"kind": "sqlite", "path": str(tmp_path / "balancer.db")},
                "data_dir": str(tmp_path / "data"),
                "outputs": outputs,
            }
        )
    )
    url, log, env = f"http://127.0.0.1:{port}", tmp_path / "serve.log", s3.environment()
    s3.stop()  # every copy attempt fails until it is back: the copy is under way
    first = serve(config, log, env)
    try:
        async with aiohttp.ClientSession() as session:

            async def status() -> Any:
                async with session.get(url + "/balancer/status") as resp:
                    outputs = (await resp.json())["outputs"]
                    return outputs if outputs["backlog"] == 1 and outputs["last_error"] else None

            async def ended() -> Any:
                async with session.get(f"{url}/history/{prompt_id}") as resp:
                    return (await resp.json()).get(prompt_id)

            # ready: the backend is up and its catalogue read, so /prompt is taken
            await wait_ready(session, url + "/balancer/ready")
            async with session.post(url + "/prompt", json={"prompt": colored(5)}) as resp:
                assert resp.status == 200, await resp.text()
                prompt_id = (await resp.json())["prompt_id"]
            await until(status, "the copy never started")
            assert await ended() is None, "held: not ended while its copy runs"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            await s3.start()
            second = serve(config, log, env)
            try:
                await wait_ready(session, url + "/balancer/health")
                entry = await until(ended, "the job was left waiting after the restart")
            finally:
                second.terminate()
                second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        await backend.close()
    assert entry["status"]["status_str"] == "success"
    image = entry["outputs"]["3"]["images"][0]
    assert image["stored"] is True
    written = (tmp_path / "g" / "output" / image["filename"]).read_bytes()
    assert s3.object_path(image["key"]).read_bytes() == written
