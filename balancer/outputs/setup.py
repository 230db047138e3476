"""The sink's place in the app: opened before the job machinery is built (it
is their completing step), its routes, metrics and retention loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from balancer.config.delivery_settings import OutputSettings
from balancer.outputs.bucket import open_bucket
from balancer.outputs.copier import Copier, backoff
from balancer.outputs.index import StoredFiles
from balancer.outputs.links import Links
from balancer.outputs.metrics import OutputMetrics
from balancer.outputs.retention import keep_deleting
from balancer.outputs.sink import OutputSink
from balancer.outputs.state import SinkState
from balancer.store import Store
from balancer.store.kept import Raw

OUTPUTS: web.AppKey[OutputSink] = web.AppKey("outputs", OutputSink)


@contextlib.asynccontextmanager
async def open_sink(
    settings: OutputSettings,
    http: aiohttp.ClientSession,
    store: Store,
    registry: CollectorRegistry,
) -> AsyncIterator[OutputSink | None]:
    """The configured sink (None when `outputs.sink` is none), closed on exit."""
    if settings.sink == "none":
        yield None
        return
    async with open_bucket(settings) as bucket:
        delays = backoff(settings.retry_delay, settings.max_attempts)
        state = SinkState()
        sink = OutputSink(
            settings,
            bucket,
            Copier(http, bucket, delays, state),
            Links(settings, bucket),
            store,
            OutputMetrics(registry),
            state,
            StoredFiles(await store.histories()),
        )
        retention = (
            asyncio.create_task(keep_deleting(sink, store, settings.delete_after, time.time))
            if settings.delete_after is not None
            else None
        )
        try:
            yield sink
        finally:
            if retention is not None:
                retention.cancel()
                await asyncio.gather(retention, return_exceptions=True)
            await sink.close()


async def present(request: web.Request, entry: Any) -> Any:
    """A kept history entry as a client gets it: fresh signed URLs."""
    sink = request.app.get(OUTPUTS)
    return entry if sink is None or entry is None else await sink.links.fresh(entry)


async def present_raw(request: web.Request, item: Raw) -> Raw:
    """`present` for an entry held as JSON text (parsed only if it has a URL)."""
    sink = request.app.get(OUTPUTS)
    at, prompt_id, raw = item
    if sink is None or '"stored": true' not in raw:
        return item
    return at, prompt_id, json.dumps(await sink.links.fresh(json.loads(raw)))


def status(request: web.Request) -> dict[str, Any]:
    sink = request.app.get(OUTPUTS)
    if sink is None:
        return {"sink": "none"}
    return {"sink": sink.settings.sink, "bucket": sink.settings.bucket, **sink.state.document()}
