"""Backend changes made through the admin API, shared by every replica: a
versioned hash in Redis that each replica reads every probe interval.

The hash holds the latest admin word on each backend, not a log: `member:<name>`
is the body that added it (as POSTed) or `removed`, `drain:<name>` is `1` or
`0`. Each write bumps a version in the same transaction, so a replica reads the
hash again only when something changed, and a replica that starts (or missed
changes while Redis was away) gets the whole current state at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.logs import get_logger
from balancer.store.model import StoreUnavailable

log = get_logger("balancer.replicas")
KEY = "backend-changes"  # after the store's prefix
VERSION = "backend-changes:version"
REMOVED = "removed"


@dataclass(frozen=True)
class AdminState:
    """The admin word on each backend: added (with its POST body) or
    removed, and drained or not."""

    added: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: frozenset[str] = frozenset()
    drained: dict[str, bool] = field(default_factory=dict)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_state(raw: dict[Any, Any]) -> AdminState:
    added: dict[str, dict[str, Any]] = {}
    removed: set[str] = set()
    drained: dict[str, bool] = {}
    for key, value in raw.items():
        kind, _, name = _text(key).partition(":")
        text = _text(value)
        if kind == "member" and text == REMOVED:
            removed.add(name)
        elif kind == "member":
            try:
                added[name] = json.loads(text)
            except ValueError:
                log.warning("backend_change_unreadable", backend=name)
        elif kind == "drain":
            drained[name] = text == "1"
    return AdminState(added, frozenset(removed), drained)


class BackendChanges:
    """Writes admin changes and reads them back when their version moved."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.key, self.version = prefix + KEY, prefix + VERSION
        self.seen: int | None = None

    async def _write(self, field_: str, value: str) -> None:
        """Raises StoreUnavailable with Redis unreachable (nothing written):
        the app answers 503 `store_unavailable`, like any store outage."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key, field_, value)
                pipe.incr(self.version)
                await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(f"backend change not shared: {exc}") from exc

    async def added(self, name: str, body: dict[str, Any]) -> None:
        await self._write(f"member:{name}", json.dumps(body))

    async def removed(self, name: str) -> None:
        await self._write(f"member:{name}", REMOVED)

    async def drained(self, name: str, drained: bool) -> None:
        await self._write(f"drain:{name}", "1" if drained else "0")

    async def news(self) -> AdminState | None:
        """The whole admin state if it changed since the last call, else
        None. Raises RedisError (then the next call reads it again)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self.version)
            pipe.hgetall(self.key)
            version, raw = await pipe.execute()
        current = int(version or 0)
        if current == self.seen:
            return None
        self.seen = current
        return parse_state(raw)
