"""Several balancer replicas, each its own `comfyui-balancer serve` process,
sharing one real `redis-server` (store.kind redis): what `bench proxy
--replicas`, `bench schedule --replicas` and tests/ha start.

Each replica has its own port, data dir, config and `replicas.name` (r0,
r1, ...); its output goes to `<folder>/r<i>/serve.log` (a restart's to
`serve.1.log`, and so on: harness.new_log). Leaving the context
stops the replicas (SIGTERM, then SIGKILL after 10 s) and then Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from balancer.bench.harness import (
    READY_BOUND,
    child,
    free_ports,
    new_log,
    wait_json,
    write_balancer_config,
)
from balancer.bench.redisserver import RedisServer


@dataclass(frozen=True)
class Replicas:
    urls: tuple[str, ...]  # http://127.0.0.1:<port> of each, r0 first
    procs: tuple[subprocess.Popen[bytes], ...]  # the same order
    redis: RedisServer


@contextlib.contextmanager
def shared_redis(folder: Path) -> Iterator[RedisServer]:
    """A `redis-server` in `folder/redis`, stopped on exit."""
    server = RedisServer(folder / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def replica(
    folder: Path,
    index: int,
    backend_ports: Sequence[int],
    port: int,
    redis: RedisServer,
    **extra: Any,
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """Replica `r<index>` as a `serve` process on `port` (stopped on exit),
    with its config and log in `folder/r<index>`: started again with the
    same index, it is the same replica (a restart)."""
    home = folder / f"r{index}"
    home.mkdir(parents=True, exist_ok=True)
    config = write_balancer_config(
        home,
        backend_ports,
        port,
        store={"kind": "redis", "url": redis.url},
        replicas={"name": f"r{index}", "advertise": f"http://127.0.0.1:{port}"},
        **extra,
    )
    return child(["serve", "--config", str(config)], log=new_log(home, "serve"))


@contextlib.contextmanager
def replica_processes(
    folder: Path, backend_ports: Sequence[int], count: int, redis: RedisServer, **extra: Any
) -> Iterator[Replicas]:
    """`count` replicas in front of the backends on `backend_ports`, on
    `redis`; `extra` are more top-level config sections (e.g. routing)."""
    ports = free_ports(count)
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(replica(folder, index, backend_ports, port, redis, **extra))
            for index, port in enumerate(ports)
        ]
        urls = tuple(f"http://127.0.0.1:{port}" for port in ports)
        yield Replicas(urls, tuple(procs), redis)


@contextlib.contextmanager
def replicas_on_redis(
    folder: Path, backend_ports: Sequence[int], count: int, **extra: Any
) -> Iterator[Replicas]:
    """A `redis-server` of their own, and `count` replicas on it."""
    with (
        shared_redis(folder) as redis,
        replica_processes(folder, backend_ports, count, redis, **extra) as replicas,
    ):
        yield replicas


def all_backends_ready(body: Any) -> bool:
    return bool(body.get("backends_ready") == body.get("backends"))


async def wait_replicas_ready(
    session: aiohttp.ClientSession, replicas: Replicas, timeout: float = READY_BOUND
) -> None:
    """Until every replica's `/balancer/ready` says every backend can take prompts."""
    await asyncio.gather(
        *(
            wait_json(session, url + "/balancer/ready", all_backends_ready, timeout)
            for url in replicas.urls
        )
    )
