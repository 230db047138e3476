"""`outputs.delete_after`: a job's objects are deleted that long after its end
(a bucket lifecycle rule on the prefix is the alternative, and costs nothing
here). The end time is the backend's `execution_success` timestamp."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from balancer.logs import get_logger
from balancer.outputs.bucket import BucketError
from balancer.outputs.items import stored_keys
from balancer.outputs.sink import OutputSink
from balancer.store import Store

log = get_logger("balancer.outputs")
Wall = Callable[[], float]


def ended_at(entry: Any) -> float | None:
    """Seconds since the epoch when the run ended, from its status messages."""
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict):
            stamp = message[1].get("timestamp")
            if isinstance(stamp, int | float):
                return float(stamp) / 1000
    return None


async def expired(store: Store, now: float, keep: float) -> list[str]:
    return [
        prompt_id
        for prompt_id, entry in (await store.histories()).items()
        if any(True for _ in stored_keys(entry))
        and (end := ended_at(entry)) is not None
        and end + keep <= now
    ]


async def sweep(sink: OutputSink, store: Store, now: float, keep: float) -> int:
    deleted = 0
    for prompt_id in await expired(store, now, keep):
        try:
            deleted += await sink.delete(prompt_id)
        except BucketError as exc:
            sink.state.last_error = str(exc)
            log.warning("outputs_delete_failed", prompt_id=prompt_id, error=str(exc))
    return deleted


async def keep_deleting(
    sink: OutputSink,
    store: Store,
    keep: float,
    wall: Wall,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Sweep every quarter of `keep` (at most every minute), until cancelled."""
    while True:
        await sweep(sink, store, wall(), keep)
        await sleep(min(60.0, keep / 4))
