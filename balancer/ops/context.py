"""The operations side of one app: metrics, drains, membership."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from balancer.backends.drain import Drainer
from balancer.ops.backend_admin import BackendAdmin, Following
from balancer.ops.drain_end import DrainEnds
from balancer.ops.membership import Membership
from balancer.ops.metrics import Metrics
from balancer.ops.status import JobTally


@dataclass(frozen=True)
class Ops:
    metrics: Metrics
    tally: JobTally
    drainer: Drainer
    members: Membership
    drain_ends: DrainEnds
    admin: BackendAdmin
    # With several replicas: applies the others' admin changes.
    following: Following | None


OPS: web.AppKey[Ops] = web.AppKey("ops", Ops)
