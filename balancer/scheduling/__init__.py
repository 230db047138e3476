"""Scheduling: filters -> scores -> pick, pure functions over candidate snapshots."""

from balancer.scheduling.candidate import Candidate, candidates_from
from balancer.scheduling.picker import Chosen, NoBackend, Picker

__all__ = ["Candidate", "Chosen", "NoBackend", "Picker", "candidates_from"]
