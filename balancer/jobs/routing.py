"""The routing settings in force, and the policy's picker built from them.

A reload swaps both in one step (`apply`), so every part that routes (the
dispatcher, the late binder, failover, admission) reads the new values at
once: nothing keeps a copy of an old section.
"""

from __future__ import annotations

from balancer.config.routing_settings import RoutingSettings
from balancer.logs import get_logger
from balancer.scheduling import Picker
from balancer.scheduling.policies import build_policy

log = get_logger("balancer.jobs")


class Routing:
    def __init__(self, settings: RoutingSettings) -> None:
        self.settings = settings
        self.picker: Picker = build_policy(settings)

    def apply(self, settings: RoutingSettings) -> None:
        if settings == self.settings:
            return
        self.settings = settings
        self.picker = build_policy(settings)
        log.info("routing_applied", policy=settings.policy, max_queue=settings.max_queue)

    @property
    def slots(self) -> int | None:
        """Prompts one backend may hold at once (the one it runs and those
        pending) when the policy binds late; None: no limit."""
        limit = self.settings.max_pending_per_backend
        return limit + 1 if limit is not None and self.picker.binds_late else None

    @property
    def steals(self) -> bool:
        """Work stealing is on, and the policy binds late (it has a queue)."""
        return self.settings.work_stealing and self.picker.binds_late
