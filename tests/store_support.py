"""Stores of each kind for tests that reopen one: a restart of the balancer
is a new store over the same data (SQLite: the same file; Redis: a new
client on the same Redis; memory: the same object, which forgets nothing
while the test runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from balancer.store import MemoryStore, SqliteStore, Store
from balancer.store.memory import MAX_HISTORY
from balancer.store.open import close_store
from balancer.store.redis import RedisStore, redis_client


class Reopen:
    """`await reopen()` closes the store it opened last and opens the same
    data again; `close()` at the end of the test."""

    def __init__(self, kind: str, path: Path, redis_url: str = "") -> None:
        self.kind = kind
        self.path = path
        self.redis_url = redis_url
        self.current: Store | None = None
        self.memory: MemoryStore | None = None

    async def __call__(self, max_history: int = MAX_HISTORY) -> Store:
        await self.close()
        self.current = self._open(max_history)
        return self.current

    def _open(self, max_history: int) -> Store:
        opener = {"memory": self._memory, "sqlite": self._sqlite, "redis": self._redis}
        return opener[self.kind](max_history)

    def _memory(self, max_history: int) -> Store:
        self.memory = self.memory or MemoryStore(max_history)
        return self.memory

    def _sqlite(self, max_history: int) -> Store:
        return SqliteStore(self.path, max_history)

    def _redis(self, max_history: int) -> Store:
        return RedisStore(redis_client(self.redis_url, 2.0), max_history=max_history)

    async def close(self) -> None:
        if self.current is not None:
            await close_store(self.current)
            self.current = None

    def config(self) -> dict[str, Any]:
        """The `store:` section of a config file for this data."""
        if self.kind == "redis":
            return {"kind": "redis", "url": self.redis_url}
        return {"kind": self.kind, "path": str(self.path)}
