"""The node each running job is on, shared between replicas: the replica
that follows a job gets its backend's `executing` events, and a client may
reconnect to any replica, which tells it that node as one balancer would.
One key per running job, `<prefix>node:<prompt_id>`, written by the
following replica at each `executing`, removed when the job leaves its
backend, and expiring after TTL (a removal lost with its replica).

The relay only notes a change (`set`, `drop`): the event bus's send loop
writes it, in order with the frames (bus.py), so a job's frames never wait
on Redis, and a replica that gets the `executing` frame can read its node.
Redis away: the writes wait in that queue, in order, until it returns.
Until its write is applied, this replica answers a note from memory."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from balancer.replicas.bus import EventBus
from balancer.replicas.bus_script import Ops
from balancer.replicas.outage import Outage

PREFIX = "node:"  # after the store's prefix
TTL = 86_400  # seconds


class SharedNodes:
    def __init__(self, redis: Redis, bus: EventBus, prefix: str) -> None:
        self.redis = redis
        self.bus = bus
        self.prefix = prefix + PREFIX
        self.outage = Outage("running_node")
        # Noted, not applied yet: prompt_id -> the newest note (node None: removed).
        self._due: dict[str, _NodeWrite] = {}

    def set(self, prompt_id: str, node: str) -> None:
        self._note(prompt_id, node)

    def drop(self, prompt_id: str) -> None:
        self._note(prompt_id, None)

    def _note(self, prompt_id: str, node: str | None) -> None:
        write = self._due[prompt_id] = _NodeWrite(self, prompt_id, node)
        self.bus.write(write)

    def _done(self, write: _NodeWrite) -> None:
        if self._due.get(write.prompt_id) is write:  # no newer note waits
            del self._due[write.prompt_id]

    async def of(self, prompt_ids: Iterable[str]) -> dict[str, str]:
        ids = list(prompt_ids)
        noted = {p: self._due[p].node for p in ids if p in self._due}
        found = {p: node for p, node in noted.items() if node is not None}
        unread = [p for p in ids if p not in noted]
        if not unread:
            return found
        try:
            raw = await self.redis.mget([self.prefix + p for p in unread])
        except RedisError as exc:
            self.outage.failed(exc)
            return found
        read = zip(unread, raw, strict=True)
        return found | {p: v.decode() if isinstance(v, bytes) else str(v) for p, v in read if v}


@dataclass(frozen=True, eq=False)
class _NodeWrite:
    """One note, as the send loop writes it (bus.Write)."""

    nodes: SharedNodes
    prompt_id: str
    node: str | None

    def add(self, ops: Ops) -> None:
        key = self.nodes.prefix + self.prompt_id
        if self.node is None:
            ops.add("del", [key])
        else:
            ops.add("set", [key], self.node, TTL)

    def applied(self, results: list[Any]) -> None:
        self.nodes._done(self)
