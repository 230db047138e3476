"""Where pins, unfinished jobs and kept history live: in memory (tests) or in
SQLite (the embedded default). Redis for several replicas would implement the
same interface."""

from balancer.store.memory import MemoryStore
from balancer.store.model import Pin, Store, StoredJob, StoreUnavailable
from balancer.store.sqlite import SqliteStore

__all__ = ["MemoryStore", "Pin", "SqliteStore", "Store", "StoreUnavailable", "StoredJob"]
