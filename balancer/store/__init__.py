"""Where pins, unfinished jobs and kept history live: in memory (tests),
SQLite (the embedded default) or Redis (several replicas, `store.redis`;
`store.open` builds the one the settings name)."""

from balancer.store.memory import MemoryStore
from balancer.store.model import Pin, Store, StoredJob, StoreUnavailable
from balancer.store.sqlite import SqliteStore

__all__ = ["MemoryStore", "Pin", "SqliteStore", "Store", "StoreUnavailable", "StoredJob"]
