"""Everything a route handler needs, built once per app and passed in."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from balancer.backends.channel import Channels
from balancer.backends.prober import Prober
from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock
from balancer.catalog.book import CatalogueReader, Catalogues
from balancer.config.model import Settings
from balancer.errors import error_response
from balancer.jobs.events import JobEvents
from balancer.jobs.late import LateBinder
from balancer.jobs.submit import Submitter
from balancer.jobs.tracker import Tracker
from balancer.proxy.forward import Forwarder
from balancer.proxy.shared_reads import SharedReads
from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_relay import EventRelay
from balancer.store import Store
from balancer.upstream import Upstream, UpstreamError, UpstreamReply


@dataclass
class Balancer:
    settings: Settings
    registry: Registry
    prober: Prober
    upstream: Upstream
    forwarder: Forwarder
    submitter: Submitter
    binder: LateBinder
    store: Store
    clock: Clock
    events: JobEvents
    tracker: Tracker
    hub: ClientHub
    relay: EventRelay
    channels: Channels
    catalogues: Catalogues
    catalogue_reader: CatalogueReader
    reads: SharedReads = field(default_factory=SharedReads)

    def owner_of(self, prompt_id: str) -> Backend | None:
        pin = self.store.get_pin(prompt_id)
        return self.registry.get(pin.backend) if pin else None

    async def each_healthy(
        self, method: str, path: str, payload: Any = None
    ) -> list[tuple[Backend, UpstreamReply | UpstreamError]]:
        """Send one request to every healthy backend at once; keep every outcome."""
        return await self.each(self.registry.healthy(), method, path, payload)

    async def each(
        self, backends: list[Backend], method: str, path: str, payload: Any = None
    ) -> list[tuple[Backend, UpstreamReply | UpstreamError]]:
        body = None if payload is None else json.dumps(payload).encode()

        async def one(backend: Backend) -> UpstreamReply | UpstreamError:
            try:
                return await self.upstream.call(method, backend.url + path, body=body)
            except UpstreamError as exc:
                return exc

        replies = await asyncio.gather(*(one(b) for b in backends))
        return list(zip(backends, replies, strict=True))


BALANCER: web.AppKey[Balancer] = web.AppKey("balancer", Balancer)


def ctx(request: web.Request) -> Balancer:
    return request.app[BALANCER]


def reply_response(reply: UpstreamReply) -> web.Response:
    """Relay a backend answer the balancer read whole."""
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)


def upstream_failed(backend: Backend, exc: UpstreamError) -> web.Response:
    return error_response(502, "bad_gateway", f"Backend {backend.name} failed", str(exc))


async def read_json_object(request: web.Request, *, empty_ok: bool = False) -> Any:
    """Like `read_json`, but the body must be a JSON object. With `empty_ok`,
    an empty or unparseable body counts as `{}` (ComfyUI's /interrupt rule)."""
    raw = await request.read()
    if empty_ok and not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        if empty_ok:
            return {}
        return error_response(400, "invalid_json", "Request body is not valid JSON", str(exc))
    if not isinstance(data, dict):
        return error_response(400, "invalid_json", "Request body must be a JSON object")
    return data
