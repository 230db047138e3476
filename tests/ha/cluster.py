"""The HA test's processes: a `redis-server`, emulated backends and balancer
replicas, each its own process (the replicas through the bench harness),
each started on a free port with a retry if the port was taken meanwhile."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from balancer.bench.harness import child, new_log, start_on_free_port, wait_json
from balancer.bench.redisserver import RedisServer
from balancer.bench.replicaset import all_backends_ready, replica

TIME_SCALE = "0.1"  # emulated run times: a job takes some tens of ms


@dataclass
class Cluster:
    folder: Path
    session: aiohttp.ClientSession
    stack: contextlib.ExitStack
    redis: RedisServer
    backend_ports: list[int] = field(default_factory=list)
    backends: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # replica r<i> listens on ports[i]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def backend_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.backend_ports[index]}"

    async def start_backend(self, index: int) -> None:
        home = self.folder / f"gpu{index}"

        def launch(port: int) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
            args = ["emulate", "--port", str(port), "--name", f"gpu{index}"]
            args += ["--base-dir", str(home), "--time-scale", TIME_SCALE]
            log = new_log(self.folder, f"gpu{index}")
            return child([*args, "--model-load-time", "0"], log=log)

        port, proc = await start_on_free_port(self.session, self.stack, launch, "/system_stats")
        self.backend_ports.append(port)
        self.backends.append(proc)

    async def start_replica(self, index: int) -> None:
        """Replica r<index>, new or restarted (its port may change)."""

        def launch(port: int) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
            return replica(self.folder, index, self.backend_ports, port, self.redis)

        port, proc = await start_on_free_port(self.session, self.stack, launch, "/balancer/health")
        if index < len(self.ports):
            self.ports[index], self.procs[index] = port, proc
        else:
            self.ports.append(port)
            self.procs.append(proc)
        url = f"http://127.0.0.1:{port}/balancer/ready"
        await wait_json(self.session, url, all_backends_ready, timeout=120)

    async def get(self, url: str) -> Any:
        async with self.session.get(url) as resp:
            assert resp.status == 200, f"{url}: {resp.status}"
            return await resp.json()
