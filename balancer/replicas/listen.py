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
) -> None:
    """Subscribe to `channels()` (read again on each reconnection) and hand
    every published message to `on_message`, until cancelled."""
    while True:
        try:
            await pubsub.subscribe(*channels())
            outage.ok()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    on_message(message)
        except RedisError as exc:
            outage.failed(exc)
            await sleep(RETRY)
