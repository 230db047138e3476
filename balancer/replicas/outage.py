"""Loops that talk to Redis: they go on when it is away, with one warning
when calls start failing and one line when they work again (a loop that
retries every second must not log every second)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from balancer.logs import get_logger

log = get_logger("balancer.replicas")

Sleep = Callable[[float], Awaitable[None]]


class Outage:
    def __init__(self, event: str, **context: Any) -> None:
        self.event = event
        self.context = context
        self.failing = False

    def failed(self, exc: Exception) -> None:
        if not self.failing:
            log.warning(f"{self.event}_failed", error=str(exc), **self.context)
        self.failing = True

    def ok(self) -> None:
        if self.failing:
            log.info(f"{self.event}_recovered", **self.context)
        self.failing = False


async def repeat(
    step: Callable[[], Awaitable[None]],
    interval: Callable[[], float],
    outage: Outage,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """`step` now and after every `interval`, until cancelled."""
    while True:
        try:
            await step()
        except RedisError as exc:
            outage.failed(exc)
        else:
            outage.ok()
        await sleep(interval())
