"""The node each running job is on, shared between replicas: the replica
that follows a job gets its backend's `executing` events, and a client may
reconnect to any replica, which tells it that node as one balancer would.
One key per running job, `<prefix>node:<prompt_id>`, written by the
following replica at each `executing`, removed when the job leaves its
backend, and expiring after TTL (a removal lost while Redis was away).
Redis away: no hint (the rest of the job's events still come)."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.replicas.outage import Outage

PREFIX = "node:"  # after the store's prefix
TTL = 86_400  # seconds


class SharedNodes:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix + PREFIX
        self.outage = Outage("running_node")

    async def set(self, prompt_id: str, node: str) -> None:
        try:
            await self.redis.set(self.prefix + prompt_id, node, ex=TTL)
        except RedisError as exc:
            self.outage.failed(exc)
        else:
            self.outage.ok()

    async def drop(self, prompt_id: str) -> None:
        try:
            await self.redis.delete(self.prefix + prompt_id)
        except RedisError as exc:
            self.outage.failed(exc)

    async def of(self, prompt_ids: Iterable[str]) -> dict[str, str]:
        ids = list(prompt_ids)
        if not ids:
            return {}
        try:
            raw = await self.redis.mget([self.prefix + p for p in ids])
        except RedisError as exc:
            self.outage.failed(exc)
            return {}
        found = zip(ids, raw, strict=True)
        return {p: v.decode() if isinstance(v, bytes) else str(v) for p, v in found if v}
