"""Scheduling: filters -> scores -> pick, pure functions over candidate snapshots."""

from balancer.scheduling.candidate import Candidate, candidates_from
from balancer.scheduling.picker import Chosen, NoBackend, Picker, Wait

__all__ = ["Candidate", "Chosen", "NoBackend", "Picker", "Wait", "candidates_from"]
