"""Background work that needs the store goes on when the store cannot answer
(StoreUnavailable): that one call is skipped, and the loop that made it (the
next probe, the next wake-up, the next channel event) tries again. One
warning when calls start failing, one line when they work again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec

from balancer.replicas.outage import Outage
from balancer.store.model import StoreUnavailable

P = ParamSpec("P")


def guarded(event: str, call: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
    """`call`, with StoreUnavailable logged (`{event}_failed`) instead of raised."""
    outage = Outage(event)

    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await call(*args, **kwargs)
        except StoreUnavailable as exc:
            outage.failed(exc)
        else:
            outage.ok()

    return run
