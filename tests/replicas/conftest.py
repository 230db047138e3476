"""Several balancer replicas in one process, in front of the same emulated
backends and sharing one real Redis (each with its own connection, as
separate processes would have). Probing and heartbeats (after the first, at
start) are by hand, on one fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer
from store_support import REDIS_HANG
from support import FakeClock, Pool, Stalls, colored

from balancer.app import create_app
from balancer.bench.redisserver import RedisServer
from balancer.config.backend_settings import BackendSettings
from balancer.config.settings import Settings
from balancer.config.storage_settings import ReplicaSettings, StoreSettings
from balancer.emulator import EMULATOR, Emulator, EmulatorOptions, create_emulator_app
from balancer.replicas.hub import SharedHub
from balancer.store import MemoryStore, Store
from balancer.store.redis import RedisStore
from tests.proxy.test_ws import Socket, connect

ReplicaFactory = Callable[..., Awaitable[list[Pool]]]


async def parked(seconds: float) -> None:
    """The wait between heartbeats: forever (a test beats by hand)."""
    await asyncio.Event().wait()


async def beat(replica: Pool) -> None:
    """One heartbeat of `replica`: its lease, its slots, adoption."""
    adoption = replica.balancer.adoption
    assert adoption is not None
    await adoption.beat()


class Applied:
    """A write that adds nothing: once Redis applied it, everything the
    replica's event bus queued before it (frames, node hints) is applied."""

    def __init__(self) -> None:
        self.done = asyncio.Event()

    def add(self, pipe: Any) -> None:
        pass

    def applied(self, results: list[Any]) -> None:
        self.done.set()


async def published(replica: Pool) -> None:
    """Wait until `replica` has published every frame its relay produced so
    far (and written the node hints noted before them)."""
    hub = replica.balancer.hub
    assert isinstance(hub, SharedHub)
    marker = Applied()
    hub.bus.write(marker)
    await asyncio.wait_for(marker.done.wait(), REDIS_HANG)


async def held_at_start(replica: Pool, client_id: str) -> tuple[Socket, str]:
    """A job of `client_id` through `replica` (on gpu0, paused), started
    and held before its first node; its client's socket there."""
    gpu0 = replica.emulators["gpu0"]
    gpu0.pause()
    sock = await connect(replica, client_id)
    prompt_id = (await replica.submit(colored(6), client_id=client_id))["prompt_id"]
    while "execution_cached" not in sock.types():
        await sock.next(30)
    return sock, prompt_id


async def first_node(replica: Pool, sock: Socket) -> str:
    """Run a job held at its start (`held_at_start`) through its first node,
    held before its second; that node, as its client's socket was told."""
    gpu0 = replica.emulators["gpu0"]
    gpu0.resume()
    gpu0.pause()
    return str((await next_executing(sock))["data"]["node"])


async def next_executing(sock: Socket) -> dict[str, Any]:
    """The next `executing` frame on `sock`."""
    while True:
        frame = await sock.next(30)
        if isinstance(frame, dict) and frame["type"] == "executing":
            return frame


async def kill(replica: Pool) -> None:
    """`replica` dies like a killed process, as far as the others can tell:
    its backend channels (its own and those it took over) close, and the
    backends drop them (as they do at once when a process dies), and it
    never beats again (its lease stays in Redis, unrenewed)."""
    b = replica.balancer
    taken = b.adoption.taken if b.adoption is not None else None
    ids = [(x.name, x.channel_id) for x in b.registry if x.channel_id is not None]
    ids += [(c.backend.name, c.base_id) for c in taken.held()] if taken is not None else []
    clients = [(replica.emulators[name].hub.clients, sid) for name, sid in ids]
    gone = [c[sid].gone for c, sid in clients if sid in c]
    await b.channels.close()
    if taken is not None:
        await taken.close()
    for closed in gone:
        await asyncio.wait_for(closed.wait(), REDIS_HANG)


@pytest.fixture
async def make_replicas(
    aiohttp_client: Any, tmp_path: Path, redis_url: str
) -> AsyncIterator[ReplicaFactory]:
    clients: list[redis.Redis] = []
    stores: list[RedisStore] = []
    servers: list[TestServer] = []
    made: list[Pool] = []

    async def factory(
        replicas: int = 2,
        backends: int = 2,
        redis_at: str | None = None,
        one_store: bool = False,
        store: MemoryStore | None = None,
        redis_store: type[RedisStore] | None = None,
        prefix: str = "balancer:",
        middlewares: tuple[Any, ...] = (),
        **overrides: Any,
    ) -> list[Pool]:
        """`replicas` balancers in front of `backends` emulators, on the
        test's Redis (or the one at `redis_at`), each with its own store or
        (`one_store`, or `store` given) all on one, as on a shared store, or
        (`redis_store`, a RedisStore class) each on its own on that Redis, as
        `store.kind: redis` runs them; `prefix` is `store.prefix`;
        `middlewares` go on every emulator; `overrides` are Settings fields."""
        shared = store or MemoryStore()
        emulators: dict[str, Emulator] = {}
        urls: dict[str, TestServer] = {}
        for i in range(backends):
            name = f"gpu{i}"
            app = create_emulator_app(
                EmulatorOptions(name=name, base_dir=tmp_path / name, time_scale=0.0)
            )
            app.middlewares.extend(middlewares)
            emulators[name] = app[EMULATOR]
            urls[name] = TestServer(app)
            await urls[name].start_server()
            servers.append(urls[name])
        base = Settings(
            backends=tuple(
                BackendSettings(name, str(s.make_url("")).rstrip("/")) for name, s in urls.items()
            ),
        )
        clock, stalls = FakeClock(), Stalls()
        pools = []
        for index in range(replicas):
            name = f"r{len(made) + index}"  # unique across calls
            settings = replace(
                base,
                replicas=ReplicaSettings(name=name, advertise=f"http://{name}:8188"),
                store=StoreSettings(prefix=prefix),
                data_dir=str(tmp_path / f"data-{name}"),  # nothing shared on disk
                **overrides,
            )
            client = redis.Redis.from_url(redis_at or redis_url)
            clients.append(client)
            own: Store = MemoryStore()
            if redis_store is not None:
                own_client = redis.Redis.from_url(redis_at or redis_url)
                # no 2 s bound on a healthy Redis (a loaded machine is slow, not down)
                own = redis_store(own_client, settings.store.prefix, timeout=REDIS_HANG)
                stores.append(own)
            app = create_app(
                settings,
                clock=clock,
                wall_clock=clock,
                run_prober=False,
                store=shared if one_store or store else own,
                redis=client,
                deadline=stalls,
                sleep=parked,
            )
            pool = Pool(await aiohttp_client(app), emulators, urls, clock, stalls)
            await pool.channels_up(list(emulators))
            await pool.probe()
            pools.append(pool)
        made.extend(pools)
        return pools

    yield factory
    for pool in made:
        await pool.client.close()  # the balancers first: they hold channels and leases
    for server in servers:
        await server.close()
    for client in clients:
        await client.aclose()
    for own in stores:
        await own.aclose()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, to stop or to fill."""
    server = RedisServer(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


async def assert_store_unavailable(resp: Any) -> None:
    assert resp.status == 503, await resp.text()
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["error"]["type"] == "store_unavailable" and body["node_errors"] == {}
