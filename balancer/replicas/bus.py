"""Job events between replicas: the replica that follows a job (its
backend's channel events arrive there) publishes each frame for a client to
Redis; the replicas holding that client's sockets deliver it.

One pub/sub channel per client sid (`<prefix>ws:sid:<sid>`), which a
replica subscribes to while it holds a socket of that sid, and one for
ComfyUI's broadcasts (`<prefix>ws:all`), which every replica subscribes to.
Pub/sub channels are not per Redis database: the prefix alone keeps two
pools on one Redis apart.
A replica publishes from one task, in the order its relay produced the
frames, so each client gets one replica's frames in order; a replica skips
its own messages (it delivered them to its own sockets already).

A message is a JSON header line (sender, tenant, text or binary) and the
frame's bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from balancer.logs import get_logger
from balancer.replicas.listen import RETRY, Message, listen
from balancer.replicas.outage import Outage, Sleep

log = get_logger("balancer.replicas")

SID = "ws:sid:"  # after the store's prefix
ALL = "ws:all"

Frame = str | bytes
BATCH = 512  # frames per pipeline


@dataclass(frozen=True)
class Delivery:
    """A frame for this replica's sockets: to `sid`'s (None: to every
    socket) that may see a job of tenant `owner`; a preview only to those
    that asked for preview metadata (`preview` True) or did not (False)."""

    sid: str | None
    owner: str | None
    frame: Frame
    preview: bool | None = None


def encode(sender: str, delivery: Delivery) -> bytes:
    frame = delivery.frame
    text = isinstance(frame, str)
    meta = {"from": sender, "owner": delivery.owner, "text": text, "preview": delivery.preview}
    return json.dumps(meta).encode() + b"\n" + (frame.encode() if isinstance(frame, str) else frame)


def decode(channel: str, raw: bytes, sid_prefix: str) -> tuple[str, Delivery] | None:
    """(sender, delivery) of a message on `channel` (a sid's channel starts
    with `sid_prefix`); None when it is not one of ours."""
    header, _, payload = raw.partition(b"\n")
    try:
        meta = json.loads(header)
        sender, owner, text = str(meta["from"]), meta["owner"], bool(meta["text"])
        preview = meta["preview"]
    except (ValueError, KeyError, TypeError):
        return None
    sid = channel[len(sid_prefix) :] if channel.startswith(sid_prefix) else None
    frame: Frame = payload.decode() if text else payload
    owner = owner if isinstance(owner, str) else None
    return sender, Delivery(sid, owner, frame, preview if isinstance(preview, bool) else None)


class EventBus:
    def __init__(self, redis: Redis, me: str, prefix: str) -> None:
        self.redis = redis
        self.me = me
        self.sid, self.all = prefix + SID, prefix + ALL
        self._out: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._pubsub: PubSub = redis.pubsub()
        self._sids: dict[str, int] = {}  # sid -> sockets held here

    def publish(self, delivery: Delivery) -> None:
        """Queue a frame for the other replicas (sent in this order)."""
        channel = self.all if delivery.sid is None else self.sid + delivery.sid
        self._out.put_nowait((channel, encode(self.me, delivery)))

    async def joined(self, sid: str) -> None:
        """A socket of `sid` opened here: its frames are wanted."""
        self._sids[sid] = self._sids.get(sid, 0) + 1
        if self._sids[sid] == 1:
            await self._pubsub.subscribe(self.sid + sid)

    async def left(self, sid: str) -> None:
        count = self._sids.get(sid, 0) - 1
        if count > 0:
            self._sids[sid] = count
            return
        self._sids.pop(sid, None)
        await self._pubsub.unsubscribe(self.sid + sid)

    async def send_loop(self, sleep: Sleep = asyncio.sleep) -> None:
        """Publish queued frames in order, a batch per round trip, until
        cancelled. Redis away: the batch waits and goes when it returns."""
        outage = Outage("events_publish", replica=self.me)
        while True:
            batch = [await self._out.get()]
            while not self._out.empty() and len(batch) < BATCH:
                batch.append(self._out.get_nowait())
            while not await self._publish(batch, outage):
                await sleep(RETRY)

    async def _publish(self, batch: list[tuple[str, bytes]], outage: Outage) -> bool:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()
        except RedisError as exc:
            outage.failed(exc)
            return False
        outage.ok()
        return True

    async def receive_loop(
        self, deliver: Callable[[Delivery], None], sleep: Sleep = asyncio.sleep
    ) -> None:
        """Deliver the other replicas' frames to this replica's sockets,
        until cancelled; Redis away, it subscribes again when it returns."""
        outage = Outage("events_receive", replica=self.me)
        channels = lambda: [self.all, *(self.sid + sid for sid in self._sids)]  # noqa: E731
        await listen(
            self._pubsub, channels, partial(self._received, deliver=deliver), outage, sleep
        )

    def _received(self, message: Message, deliver: Callable[[Delivery], None]) -> None:
        found = decode(_text(message["channel"]), message["data"], self.sid)
        if found is not None and found[0] != self.me:
            deliver(found[1])

    async def close(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
