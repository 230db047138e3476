"""What one replica shares with the others through Redis, built once in the
composition root when the balancer runs as one of several replicas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from balancer.replicas.changes import BackendChanges
from balancer.replicas.identity import Replica
from balancer.replicas.leases import Leases


@dataclass(frozen=True)
class Replicas:
    me: Replica
    leases: Leases
    changes: BackendChanges

    async def status(self) -> dict[str, Any]:
        """`/balancer/status`'s replica fields: every replica with a lease,
        by name (the same list from each), and which one answered. Redis
        unreachable: the list is null and the error says why (an unread list
        is not an empty pool)."""
        now = self.leases.clock()
        try:
            members = await self.leases.members()
        except RedisError as exc:
            return {"replica": self.me.name, "replicas": None, "replicas_error": str(exc)}
        rows = [
            {
                "name": m.name,
                "address": m.address,
                "lease_age_s": round(m.age(now), 3),
                "alive": m.alive(now),
            }
            for m in members
        ]
        return {"replica": self.me.name, "replicas": rows}


def alone(me: Replica) -> dict[str, Any]:
    """The replica fields of a balancer that runs on its own."""
    row = {"name": me.name, "address": me.address, "lease_age_s": None, "alive": True}
    return {"replica": me.name, "replicas": [row]}
