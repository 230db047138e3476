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


@dataclass(frozen=True)
class Wait:
    """A backend without room now (`name`) would finish the job sooner than
    any backend with room, by more than the job has waited so far."""

    name: str


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
        # Waiting jobs the late binder looks through for one to bind while
        # those before it wait for a better backend (0: none ever waits).
        self.warm_lookahead = warm_lookahead
        self._turn = 0
        self._unroomed = [f for f in filters if f.outcome != ROOM_OUTCOME]
        self._keeps = tuple(f.keep for f in filters)

    def feasible(self, candidates: Sequence[Candidate]) -> NoBackend | None:
        """Why no backend could take the prompt even when idle (every filter
        but the room one), or None when one could."""
        eligible = apply_filters(candidates, self._unroomed)
        return eligible if isinstance(eligible, NoBackend) else None

    def place(
        self, candidates: Sequence[Candidate], waited: float, rotate: bool = True
    ) -> Chosen | Wait | NoBackend:
        """Where a job that has waited `waited` seconds goes now: the best
        backend with room, unless (with a warm lookahead, whose score is in
        seconds) a full one is better by more than that (`worth_waiting`)."""
        if self.warm_lookahead:
            wait = self._wait(candidates, waited)
            if wait is not None:
                return wait
        return self.pick(candidates, rotate)

    def _wait(self, candidates: Sequence[Candidate], waited: float) -> Wait | None:
        with_room = apply_filters(candidates, self.filters)
        anywhere = apply_filters(candidates, self._unroomed)
        if isinstance(with_room, NoBackend) or isinstance(anywhere, NoBackend):
            return None
        here = min(with_room, key=self.score)
        better = min(anywhere, key=self.score)
        if worth_waiting(self.score(here) - self.score(better), waited):
            return Wait(better.name)
        return None

    def worth_moving(self, stay: Candidate, move: Candidate) -> bool:
        """Work stealing: a job pending at `stay` (its load: the work ahead
        of it) goes to the idle `move` only if it would finish sooner there
        by this policy's score (least_loaded: always, as 0 < 1)."""
        return self.score(move) < self.score(stay)

    def pick(self, candidates: Sequence[Candidate], rotate: bool = True) -> Chosen | NoBackend:
        """The best candidate. `rotate=False` asks without taking a turn (a
        look that dispatches nothing must not shift the rotation)."""
        tied = self._best(candidates)
        if not tied:  # none passes every filter: the filters say why
            outcome = apply_filters(candidates, self.filters)
            if isinstance(outcome, NoBackend):
                return outcome
            tied = outcome  # unreachable: a candidate kept by every filter would be in `tied`
        chosen = tied[self._turn % len(tied)]
        if rotate:
            self._turn += 1
        return Chosen(chosen.name)

    def _best(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The candidates that pass every filter with the lowest score, in
        configuration order: the same as filtering all, then scoring, but
        the filters run only on candidates in score order until the best
        score that passes is known (every score is defined for any candidate)."""
        scores = list(map(self.score, candidates))
        keeps = self._keeps
        tied: list[Candidate] = []
        best = 0.0
        for index in sorted(range(len(scores)), key=scores.__getitem__):
            if tied and scores[index] > best:
                break
            candidate = candidates[index]
            for keep in keeps:
                if not keep(candidate):
                    break
            else:  # kept by every filter
                best = scores[index]
                tied.append(candidate)
        tied.sort(key=_order)
        return tied


def _order(c: Candidate) -> int:
    return c.order


def worth_waiting(saves: float, waited: float) -> bool:
    """Rent or buy: a job waits for a busier backend whose score is `saves`
    seconds lower than the best one with room (model_affinity: its own finish
    time, and the reloads binding at once would push onto later jobs) while
    it has waited less than that. Trade-off: it may wait for a GPU holding
    its model while another idles, but never longer than binding at once
    would have cost, so a load that evicts nothing is taken as soon as it
    would finish the job sooner than the wait."""
    return waited < saves
