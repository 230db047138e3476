"""Pick: run the filters, score what is left, take the best; ties rotate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from balancer.scheduling.candidate import Candidate
from balancer.scheduling.filters import DEFAULT_FILTERS, Filter
from balancer.scheduling.scores import least_loaded


@dataclass(frozen=True)
class Chosen:
    name: str


@dataclass(frozen=True)
class NoBackend:
    outcome: str
    message: str


def apply_filters(
    candidates: Sequence[Candidate], filters: Sequence[Filter]
) -> list[Candidate] | NoBackend:
    """Keep what passes every filter; name the filter that emptied the set."""
    remaining = list(candidates)
    if not remaining:
        return NoBackend("no_backends", "no backends are configured")
    for f in filters:
        remaining = [c for c in remaining if f.keep(c)]
        if not remaining:
            return NoBackend(f.outcome, f.message)
    return remaining


class Picker:
    """Stateful only in the tie-break counter, so equal backends share work
    round-robin instead of the first in file order taking every tie."""

    def __init__(
        self,
        filters: Sequence[Filter] = DEFAULT_FILTERS,
        score: Callable[[Candidate], float] = least_loaded,
    ) -> None:
        self.filters = filters
        self.score = score
        self._turn = 0

    def pick(self, candidates: Sequence[Candidate], rotate: bool = True) -> Chosen | NoBackend:
        """The best candidate. `rotate=False` asks without taking a turn (a
        look that dispatches nothing must not shift the rotation)."""
        eligible = apply_filters(candidates, self.filters)
        if isinstance(eligible, NoBackend):
            return eligible
        best = min(self.score(c) for c in eligible)
        tied = sorted((c for c in eligible if self.score(c) == best), key=lambda c: c.order)
        chosen = tied[self._turn % len(tied)]
        if rotate:
            self._turn += 1
        return Chosen(chosen.name)
