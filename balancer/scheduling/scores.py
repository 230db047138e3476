"""Scores: lower is better."""

from __future__ import annotations

from collections.abc import Callable

from balancer.scheduling.candidate import Candidate


def least_loaded(c: Candidate) -> float:
    """queue_running + queue_pending + dispatches the probe has not seen.

    Trade-off: it counts jobs, not their cost, so a backend holding one long
    job looks as busy as one holding one short job. Job sizes are unknown at
    submission, and counting is what keeps a burst from piling onto one node.
    """
    return float(c.load if c.load is not None else 0)


def round_robin(c: Candidate) -> float:
    """The same for every backend: all eligible backends tie and the picker's
    rotation takes them in turn, whatever their load.

    Trade-off: blind to load and speed, so a slow or backed-up backend gets
    the same share as an idle fast one. Here as a baseline to compare with.
    """
    return 0.0


Score = Callable[[Candidate], float]

# Selectable by name (`routing.policy`).
SCORES: dict[str, Score] = {"least_loaded": least_loaded, "round_robin": round_robin}
