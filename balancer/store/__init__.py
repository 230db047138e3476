"""Where pins live. In memory for now; the interface is what SQLite and
Redis stores implement later."""

from balancer.store.memory import MemoryStore
from balancer.store.model import Pin, Store

__all__ = ["MemoryStore", "Pin", "Store"]
