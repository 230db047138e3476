"""Routing policies by name (`routing.policy`): a score, and whether prompts
wait in the balancer until a backend has room (late binding) or go out at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from balancer.config.routing_settings import RoutingSettings
from balancer.scheduling.filters import DEFAULT_FILTERS, room_filter
from balancer.scheduling.picker import Picker
from balancer.scheduling.scores import (
    Score,
    expected_finish,
    least_loaded,
    model_affinity,
    round_robin,
)


@dataclass(frozen=True)
class Policy:
    score: Score
    # True: the room filter (`routing.max_pending_per_backend`) applies.
    # False: every prompt is sent the moment it arrives, whatever the load.
    binds_late: bool
    # Waiting jobs looked through past those that wait for a better backend
    # (`routing.warm_lookahead` overrides it). Only for a score in seconds,
    # which is what a job's wait is weighed against; 0: no job ever waits.
    warm_lookahead: int = 0


POLICIES: dict[str, Policy] = {
    # The default: late binding to the least-loaded backend with room.
    "least_loaded": Policy(least_loaded, binds_late=True),
    # Late binding to the backend that would finish the job first, learning
    # each backend's speed from the jobs it ran.
    "expected_finish": Policy(expected_finish, binds_late=True),
    # Late binding to where the job would finish first counting model loads:
    # a backend that holds the prompt's models already wins over an idle one
    # that would spend longer loading them than the queue ahead takes.
    # A job may wait for a full backend that holds its models while that
    # saves more than it has waited; jobs behind it may take the room.
    "model_affinity": Policy(model_affinity, binds_late=True, warm_lookahead=16),
    # Round robin sends at once: with a room filter it would only ever pick
    # among backends with room, which is late binding with a fixed order, not
    # the classic baseline. It ignores `max_pending_per_backend`.
    "round_robin": Policy(round_robin, binds_late=False),
}


def build_policy(routing: RoutingSettings) -> Picker:
    """The policy `routing.policy` names, as one object owning its filters
    (the room filter only when it binds late and a limit is set), its score
    and the pick."""
    policy = POLICIES[routing.policy]
    limit = routing.max_pending_per_backend
    room = (room_filter(limit),) if limit is not None and policy.binds_late else ()
    filters = (*DEFAULT_FILTERS, *room)
    lookahead = policy.warm_lookahead
    if lookahead and routing.warm_lookahead is not None:
        lookahead = routing.warm_lookahead
    return Picker(filters, policy.score, policy.binds_late, lookahead)
