"""The application state: every part of a running balancer, built once in
the composition root (balancer/app.py) and handed to route handlers.

Nothing here is assigned after construction; a reload changes `settings`
and asks the parts that route to apply the new section (`routing.apply`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from balancer.backends.channel import Channels
from balancer.backends.prober import Prober
from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock
from balancer.catalog.book import CatalogueReader, Catalogues
from balancer.catalog.residency import Residency
from balancer.config.settings import Settings
from balancer.jobs.cancel import Canceller
from balancer.jobs.dispatch import Dispatcher
from balancer.jobs.events import JobEvents
from balancer.jobs.failover import Failover
from balancer.jobs.follow import Follower
from balancer.jobs.late import LateBinder
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.routing import Routing
from balancer.jobs.submit import Submitter
from balancer.jobs.waiting import Waiting
from balancer.proxy.forward import Forwarder
from balancer.proxy.kept_reads import KeptReads
from balancer.proxy.queue_view import QueueView
from balancer.proxy.shared_reads import SharedReads
from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_relay import EventRelay
from balancer.replicas.adoption import Adoption
from balancer.replicas.coordination import Replicas
from balancer.replicas.takeover import TakenChannels
from balancer.store import Store
from balancer.upstream import Upstream, UpstreamError, UpstreamReply


@dataclass
class Balancer:
    settings: Settings
    registry: Registry
    prober: Prober
    upstream: Upstream
    forwarder: Forwarder
    store: Store
    clock: Clock
    events: JobEvents
    routing: Routing
    jobs: Jobs
    dispatcher: Dispatcher
    binder: LateBinder
    submitter: Submitter
    follower: Follower
    failover: Failover
    canceller: Canceller
    hub: ClientHub
    relay: EventRelay
    channels: Channels
    catalogues: Catalogues
    catalogue_reader: CatalogueReader
    residency: Residency
    # One of several replicas sharing Redis; None: this balancer runs alone.
    replicas: Replicas | None
    # Its heartbeat, and the jobs of replicas that die; None when alone.
    adoption: Adoption | None
    # The channels taken over from a former process (restarted, or a replica gone).
    taken: TakenChannels
    waiting: Waiting  # how many jobs wait in the balancer queue, pool-wide
    # Backend answers kept until that backend may have changed them.
    kept: KeptReads
    reads: SharedReads = field(default_factory=SharedReads)
    # GET /queue's presented answer, per set of backend answers.
    queue_view: QueueView = field(default_factory=QueueView)

    async def owner_of(self, prompt_id: str) -> Backend | None:
        pin = await self.store.get_pin(prompt_id)
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
