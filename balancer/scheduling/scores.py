"""Scores: lower is better."""

from __future__ import annotations

from balancer.scheduling.candidate import Candidate


def least_loaded(c: Candidate) -> float:
    """queue_running + queue_pending + dispatches the probe has not seen.

    Trade-off: it counts jobs, not their cost, so a backend holding one long
    job looks as busy as one holding one short job. Job sizes are unknown at
    submission, and counting is what keeps a burst from piling onto one node.
    """
    return float(c.load if c.load is not None else 0)
