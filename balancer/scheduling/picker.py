"""Pick: run the filters, score what is left, take the best; ties rotate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from balancer.scheduling.candidate import Candidate
from balancer.scheduling.filters import DEFAULT_FILTERS, ROOM_OUTCOME, Filter
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
    """Keep what passes every filter; name the filter that emptied the set
    (`capable_all_down` when a narrowing filter had left only some). When a
    narrowing filter keeps none, a plainer reason found among all of them
    (`all_down`) is named before it."""
    remaining = list(candidates)
    if not remaining:
        return NoBackend("no_backends", "no backends are configured")
    among = ""
    for index, f in enumerate(filters):
        kept = list(filter(f.keep, remaining))
        if not kept and f.narrows:
            plainer = apply_filters(remaining, filters[index + 1 :])
            return plainer if isinstance(plainer, NoBackend) else NoBackend(f.outcome, f.message)
        if not kept:
            if among:
                return NoBackend(f"{among}_{f.outcome}", f"{f.message} (of the {among} backends)")
            return NoBackend(f.outcome, f.message)
        if f.narrows and len(kept) < len(remaining):
            among = f.narrows
        remaining = kept
    return remaining


class Picker:
    """A routing policy as one object: its filters, its score, the pick.
    Stateful only in the tie-break counter, so equal backends share work
    round-robin instead of the first in file order taking every tie.
    `binds_late`: prompts wait in the balancer until a backend has room
    (the room filter is among the filters); False sends each at once."""

    def __init__(
        self,
        filters: Sequence[Filter] = DEFAULT_FILTERS,
        score: Callable[[Candidate], float] = least_loaded,
        binds_late: bool = True,
        warm_lookahead: int = 0,
    ) -> None:
        self.filters = filters
        self.score = score
        self.binds_late = binds_late
        # Waiting jobs the late binder looks through for one whose models are
        # resident where it would go, before it binds the first (0: never).
        self.warm_lookahead = warm_lookahead
        self._turn = 0

    def feasible(self, candidates: Sequence[Candidate]) -> NoBackend | None:
        """Why no backend could take the prompt even when idle (every filter
        but the room one), or None when one could."""
        filters = [f for f in self.filters if f.outcome != ROOM_OUTCOME]
        eligible = apply_filters(candidates, filters)
        return eligible if isinstance(eligible, NoBackend) else None

    def pick(self, candidates: Sequence[Candidate], rotate: bool = True) -> Chosen | NoBackend:
        """The best candidate. `rotate=False` asks without taking a turn (a
        look that dispatches nothing must not shift the rotation)."""
        eligible = apply_filters(candidates, self.filters)
        if isinstance(eligible, NoBackend):
            return eligible
        scores = list(map(self.score, eligible))
        best = min(scores)
        tied = sorted(
            (c for c, s in zip(eligible, scores, strict=True) if s == best), key=lambda c: c.order
        )
        chosen = tied[self._turn % len(tied)]
        if rotate:
            self._turn += 1
        return Chosen(chosen.name)
