"""The store the settings ask for, and its release: SQLite by default (one
balancer), memory for tests and the demo, Redis for several replicas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from balancer.config.settings import Settings
from balancer.logs import get_logger
from balancer.redact import display_url
from balancer.store.memory import MemoryStore
from balancer.store.model import Store
from balancer.store.redis import RedisStore, redis_client
from balancer.store.sqlite import SqliteStore

log = get_logger("balancer.store")


def _memory(settings: Settings) -> Store:
    return MemoryStore(settings.history.max_items, max_age=settings.history.max_age)


def _sqlite(settings: Settings) -> Store:
    path = settings.store.path or str(Path(settings.data_dir) / "balancer.db")
    history = settings.history
    return SqliteStore(path, history.max_items, max_age=history.max_age)


def _redis(settings: Settings) -> Store:
    """No I/O here: the client connects on the first call (restoring jobs at
    start), and a Redis that does not answer then stops `serve`."""
    store = settings.store
    log.info("store", kind="redis", url=display_url(store.url), prefix=store.prefix)
    client = redis_client(store.url, store.timeout)
    history = settings.history
    return RedisStore(
        client, store.prefix, history.max_items, max_age=history.max_age, timeout=store.timeout
    )


STORES: dict[str, Callable[[Settings], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
}


def open_store(settings: Settings) -> Store:
    return STORES[settings.store.kind](settings)


async def close_store(store: Store) -> None:
    """Release what a store holds: SQLite's file lock, Redis's connections."""
    if isinstance(store, SqliteStore):
        store.close()
    elif isinstance(store, RedisStore):
        await store.aclose()
