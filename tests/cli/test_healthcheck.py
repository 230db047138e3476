"""`comfyui-balancer healthcheck`: the container health check, on the port
the config file names."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from support import Pool, PoolFactory

from balancer.bench.harness import free_port


def config_for(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "balancer.yaml"
    path.write_text(f"listen: {{port: {port}}}\nbackends:\n  - url: http://127.0.0.1:1\n")
    return path


async def healthcheck(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run as a child process, so the balancer in this process keeps serving."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "balancer", "healthcheck", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def port_of(pool: Pool) -> int:
    port = pool.client.server.port
    assert port is not None
    return port


async def test_healthy_while_a_backend_can_take_prompts(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    pool = await make_pool(1)
    code, out, _ = await healthcheck("--config", str(config_for(tmp_path, port_of(pool))))
    assert code == 0
    assert out.startswith('ready: {"status": "ready"')


async def test_unhealthy_with_the_reason_when_no_backend_is_up(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    pool = await make_pool(1, probe_first=False)
    config = config_for(tmp_path, port_of(pool))
    code, _, err = await healthcheck(env={"BALANCER_CONFIG": str(config)})  # the image's way
    assert code == 1
    assert err.startswith('not ready: {"status": "not_ready"')
    assert '"reason": "all_down", "message": "no backend is up"' in err


async def test_unhealthy_when_nothing_listens_on_the_configured_port(tmp_path: Path) -> None:
    port = free_port()
    code, _, err = await healthcheck("--config", str(config_for(tmp_path, port)))
    assert code == 1
    assert err.startswith(f"no balancer answers http://127.0.0.1:{port}/balancer/ready: ")
