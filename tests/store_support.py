"""Stores of each kind for tests that reopen one: a restart of the balancer
is a new store over the same data (SQLite: the same file; Redis: a new
client on the same Redis; memory: the same object, which forgets nothing
while the test runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from balancer.store import MemoryStore, SqliteStore, Store, StoreUnavailable
from balancer.store.memory import MAX_HISTORY
from balancer.store.open import close_store
from balancer.store.redis import RedisStore, redis_client

# Seconds a call to a healthy Redis may take in a test: it only bounds a hang
# (the balancer's own 2 s would bet on a loaded machine's speed). A test shows
# an outage by stopping the server, which is refused at once, never slow.
REDIS_HANG = 60.0


def redis_store(url: str, **options: Any) -> RedisStore:
    """A RedisStore on `url` whose calls never time out on a healthy Redis."""
    options.setdefault("timeout", REDIS_HANG)
    return RedisStore(redis_client(url, REDIS_HANG), **options)


class Outage:
    """Every Store call raises StoreUnavailable while `down`; else the inner
    store answers. A balancer's kill is an outage that never ends: its
    tasks, which run on in a test until torn down, change nothing more."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable("store server 127.0.0.1:1 unreachable")
            return await method(*args, **kwargs)

        return call


class Reopen:
    """`await reopen()` closes the store it opened last and opens the same
    data again; `close()` at the end of the test."""

    def __init__(self, kind: str, path: Path, redis_url: str = "") -> None:
        self.kind = kind
        self.path = path
        self.redis_url = redis_url
        self.current: Store | None = None
        self.memory: MemoryStore | None = None

    async def __call__(self, max_history: int = MAX_HISTORY, **options: Any) -> Store:
        """`options`: the stores' keyword arguments (`max_age`, `wall`); the
        memory store keeps those it was first opened with."""
        await self.close()
        self.current = self._open(max_history, options)
        return self.current

    def _open(self, max_history: int, options: dict[str, Any]) -> Store:
        opener = {"memory": self._memory, "sqlite": self._sqlite, "redis": self._redis}
        return opener[self.kind](max_history, options)

    def _memory(self, max_history: int, options: dict[str, Any]) -> Store:
        self.memory = self.memory or MemoryStore(max_history, **options)
        return self.memory

    def _sqlite(self, max_history: int, options: dict[str, Any]) -> Store:
        return SqliteStore(self.path, max_history, **options)

    def _redis(self, max_history: int, options: dict[str, Any]) -> Store:
        return redis_store(self.redis_url, max_history=max_history, **options)

    async def close(self) -> None:
        if self.current is not None:
            await close_store(self.current)
            self.current = None

    def config(self) -> dict[str, Any]:
        """The `store:` section of a config file for this data."""
        if self.kind == "redis":
            return {"kind": "redis", "url": self.redis_url}
        return {"kind": self.kind, "path": str(self.path)}


def serve_with_store(tmp_path: Path, store: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`serve` with this `store:` section and one unreachable backend, run
    to its end: for the ways a store stops it at start."""
    config = tmp_path / "balancer.yaml"
    backends = [{"name": "gpu0", "url": "http://127.0.0.1:9"}]
    config.write_text(json.dumps({"listen": {"port": 1}, "backends": backends, "store": store}))
    return subprocess.run(
        [sys.executable, "-m", "balancer", "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
