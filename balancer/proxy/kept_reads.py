"""Backend answers kept until the backend may have changed them.

A backend's `/queue` and `/history` change only when its queue does, and
ComfyUI then pushes `status` to every socket, the balancer's channel among
them. So an answer is kept and given again, without asking the backend,
until the first of:
- a `status` push from that backend (`Backend.pushes` moves), or a new
  channel (pushes may have been missed while it was down; with no channel
  nothing is kept);
- any request the balancer sends that may change a backend (`Upstream.writes`
  moves: the backend's answer to it can arrive before its push does);
- `max_age` (a history delete sent to the backend directly pushes nothing).

A client of the balancer sees a change it made at once, and a change made on
a backend directly as soon as that backend's push arrives. One closed-loop
client polling `/queue` then costs no round trip to the backends at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from balancer.backends.state import Backend, Clock
from balancer.upstream import Upstream


class Stamp(NamedTuple):
    pushes: int
    channel: str
    writes: int


@dataclass(frozen=True)
class Kept:
    stamp: Stamp
    at: float
    answer: Any


# Asks these backends, each answer parsed (None: no usable answer).
Ask = Callable[[list[Backend]], Awaitable[list[tuple[Backend, Any]]]]


class KeptReads:
    """Parsed GET answers per (backend, path), at most `limit` of them (the
    least recently used goes first: a path carries its query string)."""

    def __init__(self, upstream: Upstream, clock: Clock, limit: int = 4096) -> None:
        self.upstream = upstream
        self.clock = clock
        self.limit = limit
        self._kept: OrderedDict[tuple[str, str], Kept] = OrderedDict()

    def stamp(self, backend: Backend) -> Stamp | None:
        """What must stay the same for an answer fetched now to hold."""
        if backend.channel_id is None:
            return None
        return Stamp(backend.pushes, backend.channel_id, self.upstream.writes)

    def version(self, backends: list[Backend]) -> tuple[object, ...]:
        """What must stay the same for answers of `backends` asked now to
        hold: their stamps (also without a channel: then pushes are missed
        and only the balancer's writes are known)."""
        own = tuple((b.name, b.pushes, b.channel_id) for b in backends)
        return (self.upstream.writes, *own)

    def held(
        self, backends: list[Backend], path: str, max_age: float
    ) -> list[tuple[str, Any]] | None:
        """(name, answer) of each backend, in the order given, when every one
        has a kept answer that still holds (nothing to ask); else None."""
        now = self.clock()
        found = []
        for backend in backends:
            kept = self._holding(backend, path, now, max_age)
            if kept is None:
                return None
            found.append((backend.name, kept.answer))
        return found

    async def answers(
        self, backends: list[Backend], path: str, ask: Ask, max_age: float
    ) -> list[tuple[str, Any]]:
        """(name, answer) of each backend with one, in the order given: kept
        answers that still hold, the others asked in one round."""
        now = self.clock()
        found: dict[str, Any] = {}
        for backend in backends:
            kept = self._holding(backend, path, now, max_age)
            if kept is not None:
                found[backend.name] = kept.answer
        stamps = {b.name: self.stamp(b) for b in backends if b.name not in found}
        missing = [b for b in backends if b.name in stamps]
        for backend, answer in await ask(missing) if missing else []:
            if answer is None:
                continue
            found[backend.name] = answer
            self._keep(backend.name, path, stamps[backend.name], now, answer)
        return [(b.name, found[b.name]) for b in backends if b.name in found]

    def _holding(self, backend: Backend, path: str, now: float, max_age: float) -> Kept | None:
        """`backend`'s kept answer to `path` if it still holds (marked used)."""
        kept = self._kept.get((backend.name, path))
        if kept is None or now - kept.at >= max_age or kept.stamp != self.stamp(backend):
            return None
        self._kept.move_to_end((backend.name, path))
        return kept

    def _keep(self, name: str, path: str, stamp: Stamp | None, at: float, answer: Any) -> None:
        if stamp is None:
            return
        self._kept[(name, path)] = Kept(stamp, at, answer)
        self._kept.move_to_end((name, path))
        while len(self._kept) > self.limit:
            self._kept.popitem(last=False)
