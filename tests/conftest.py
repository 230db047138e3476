"""Shared fixtures: emulated ComfyUI backends and a balancer in front of them,
all in-process. The prober loop is off; tests probe by hand with an injected
clock, so nothing waits on wall-clock time."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from store_support import Reopen
from support import PATIENT, FakeClock, Pool, PoolFactory, Stalls

from balancer.app import create_app
from balancer.bench.redisserver import RedisServer, redis_server_binary
from balancer.config.backend_settings import BackendSettings, ProbeSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.config.settings import Settings
from balancer.emulator import EMULATOR, Emulator, EmulatorOptions, create_emulator_app
from balancer.shutdown import Timer
from balancer.store import MemoryStore, Store
from balancer.webhooks.sender import Sleep


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths (the default data dir `./data`) land in the test's tmp dir."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def make_pool(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[PoolFactory]:
    async def factory(
        count: int = 3,
        *,
        options: dict[str, Any] | None = None,
        options_for: dict[str, dict[str, Any]] | None = None,
        backend: dict[str, Any] | None = None,
        probe: ProbeSettings | None = None,
        extra_apps: dict[str, web.Application] | None = None,
        primary: str | None = None,
        routing: RoutingSettings | None = None,
        probe_first: bool = True,
        settings_overrides: dict[str, Any] | None = None,
        middlewares: tuple[Any, ...] = (),
        sleep: Sleep = asyncio.sleep,
        store: Store | None = None,
        virtual_time: bool = False,
        shutdown_timer: Timer = asyncio.sleep,
    ) -> Pool:
        """`virtual_time`: the emulators' simulated work advances the pool's
        clock (the balancer's) instead of taking real time, so a job's run
        time as the balancer measures it is exactly the work it did."""
        clock, stalls = FakeClock(), Stalls()
        spend = clock.spend if virtual_time else asyncio.sleep
        emulators: dict[str, Emulator] = {}
        servers: dict[str, TestServer] = {}
        apps: dict[str, web.Application] = {}
        for i in range(count):
            name = f"gpu{i}"
            opts = EmulatorOptions(name=name, base_dir=tmp_path / name, time_scale=0.0)
            own = (options_for or {}).get(name, {})
            apps[name] = create_emulator_app(replace(opts, **{**(options or {}), **own}), spend)
            emulators[name] = apps[name][EMULATOR]
        apps.update(extra_apps or {})
        for name, app in apps.items():
            app.middlewares.extend(middlewares)  # e.g. a recorder of what backends receive
            servers[name] = TestServer(app)
            await servers[name].start_server()
        settings = Settings(
            backends=tuple(
                BackendSettings(
                    name=name,
                    url=str(server.make_url("")).rstrip("/"),
                    primary=name == primary,
                    **(backend or {}),
                )
                for name, server in servers.items()
            ),
            probe=probe or ProbeSettings(),
            routing=routing or RoutingSettings(),
            data_dir=str(tmp_path / "balancer-data"),
            timeouts=PATIENT,
        )
        settings = replace(settings, **(settings_overrides or {}))
        app = create_app(
            settings,
            clock=clock,
            wall_clock=clock,
            sleep=sleep,
            run_prober=False,
            store=store or MemoryStore(),
            deadline=stalls,
            shutdown_timer=shutdown_timer,
        )
        client = await aiohttp_client(app)
        pool = Pool(client, emulators, servers, clock, stalls)
        await pool.channels_up(list(emulators))
        if probe_first:
            await pool.probe()
        pools.append(pool)
        return pool

    pools: list[Pool] = []
    yield factory
    for pool in pools:
        await pool.client.close()  # the balancer first: it holds channels to the backends
        for server in pool.servers.values():
            await server.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real `redis-server` for the session (Debian's package, which
    `.ci/run` installs). Missing outside CI, the Redis tests are skipped with
    that reason; in CI (`CI` set) a missing binary is a failure."""
    if redis_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(params=["sqlite", "redis"])
async def reopen_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Reopen]:
    """Opens (and reopens) a store that outlives the balancer, of each
    durable kind: SQLite (one balancer) and Redis (several replicas, on a real
    redis-server). Parametrise it indirectly to add "memory"."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    reopen = Reopen(request.param, tmp_path / "balancer.db", url)
    yield reopen
    await reopen.close()
