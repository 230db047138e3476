"""The operations side of one app: metrics, drains, membership, reload."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from balancer.backends.drain import Drainer
from balancer.config.reload import ConfigWatcher
from balancer.ops.backend_admin import BackendAdmin, Following
from balancer.ops.membership import Membership
from balancer.ops.metrics import Metrics
from balancer.ops.status import JobTally


@dataclass
class Ops:
    metrics: Metrics
    tally: JobTally
    drainer: Drainer
    members: Membership
    admin: BackendAdmin
    # With several replicas: applies the others' admin changes.
    following: Following | None
    watcher: ConfigWatcher | None = None


OPS: web.AppKey[Ops] = web.AppKey("ops", Ops)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
