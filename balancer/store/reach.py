"""One bounded Redis call: the errors that mean "no answer" (refused, reset,
timed out, a read-only replica, a Redis at its `maxmemory` refusing writes)
and no answer within the timeout all become StoreUnavailable, which the app
answers with 503 `store_unavailable`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from balancer.redact import redact
from balancer.store.model import StoreUnavailable

# How long one call may wait for its answer: `asyncio.timeout` by default;
# a test injects its own, so that a healthy Redis on a loaded machine is
# never timed out and only a Redis the test silenced is.
Deadline = Callable[[float], asyncio.Timeout]


@contextlib.asynccontextmanager
async def reachable(timeout: float, deadline: Deadline = asyncio.timeout) -> AsyncIterator[None]:
    """Run the calls inside within `timeout` seconds, or raise StoreUnavailable."""
    try:
        async with deadline(timeout):
            yield
    except TimeoutError as exc:
        raise StoreUnavailable(f"redis: no answer within {timeout:g}s") from exc
    except (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OutOfMemoryError) as exc:
        raise StoreUnavailable(f"redis: {redact(str(exc)) or type(exc).__name__}") from exc
