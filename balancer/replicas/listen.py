"""Listening on Redis pub/sub channels for as long as a replica runs:
Redis away, it subscribes again when it returns (messages published
meanwhile are lost, as pub/sub loses them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from balancer.replicas.outage import Outage, Sleep

RETRY = 0.5  # seconds between tries while Redis is away

Message = dict[str, Any]


async def listen(
    pubsub: PubSub,
    channels: Callable[[], Iterable[str]],
    on_message: Callable[[Message], None],
    outage: Outage,
    sleep: Sleep = asyncio.sleep,
    on_subscribed: Callable[[str], None] | None = None,
) -> None:
    """Subscribe to `channels()` (read again on each reconnection) and hand
    every published message to `on_message`, and (`on_subscribed`) the
    channel of each subscription Redis confirmed, until cancelled."""
    while True:
        try:
            await pubsub.subscribe(*channels())
            outage.ok()
            async for message in pubsub.listen():
                kind = message.get("type")
                if kind == "message":
                    on_message(message)
                elif kind == "subscribe" and on_subscribed is not None:
                    on_subscribed(text_of(message["channel"]))
        except RedisError as exc:
            outage.failed(exc)
            await sleep(RETRY)


def text_of(value: Any) -> str:
    """A channel name or payload as text (redis-py gives bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
