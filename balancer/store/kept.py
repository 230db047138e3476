"""Kept history entries, held in time order so a page costs its own size.

GET /history pages over every backend's entries and the balancer's kept
copies, oldest first by the job's start time. The kept copies are indexed
sorted by that time (ties in arrival order), so the newest 64 are the last 64
of a list, found without copying or sorting the other 100,000. Past
`max_items` the oldest entries go, and so do those whose job started longer
than `max_age` ago (`Retention`).

The index holds only (start time, arrival, id) per entry; the entries' JSON
text lives in a `Texts`: in memory (`HeldTexts`) for the memory store and a
shared store's snapshot, on disk for SQLite, read when a page or an entry is
asked for.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Key = tuple[float, int, str]  # (start time, arrival, prompt_id)
Raw = tuple[float, str, str]  # (start time, prompt_id, the entry's JSON)

# ComfyUI keeps at most this many history entries; so does the balancer (and
# as many ended jobs).
MAX_HISTORY = 10_000


def entry_time(entry: Any) -> float:
    """When a history entry's job started (ms), from its status messages."""
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    for message in messages if isinstance(messages, list) else []:
        if (
            isinstance(message, list)
            and len(message) == 2
            and message[0] == "execution_start"
            and isinstance(message[1], dict)
        ):
            stamp = message[1].get("timestamp")
            if isinstance(stamp, int | float):
                return float(stamp)
    return 0.0


@dataclass(frozen=True)
class Retention:
    """How much kept history stays: `max_items` entries at most, and none
    whose job started more than `max_age` seconds ago by `wall` (None: no
    age limit; an entry without a start time counts as the oldest)."""

    max_items: int = MAX_HISTORY
    max_age: float | None = None
    wall: Callable[[], float] = field(default=time.time, compare=False)

    def cutoff(self) -> float:
        """Entries whose start time (ms) is before this have expired."""
        return -math.inf if self.max_age is None else (self.wall() - self.max_age) * 1000


class Texts(Protocol):
    """Where the entries' JSON text is held, by prompt_id."""

    def text(self, prompt_id: str) -> str | None: ...

    def texts(self, prompt_ids: Sequence[str]) -> dict[str, str]: ...

    def keep(self, key: Key, text: str) -> None: ...

    def drop(self, prompt_ids: Sequence[str]) -> None: ...


class HeldTexts:
    """Texts in a dict: each costs its text's size, and the garbage
    collector has nothing to walk in 10,000 of them."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def text(self, prompt_id: str) -> str | None:
        return self._texts.get(prompt_id)

    def texts(self, prompt_ids: Sequence[str]) -> dict[str, str]:
        return {pid: self._texts[pid] for pid in prompt_ids if pid in self._texts}

    def keep(self, key: Key, text: str) -> None:
        self._texts[key[2]] = text

    def drop(self, prompt_ids: Sequence[str]) -> None:
        for pid in prompt_ids:
            self._texts.pop(pid, None)


class KeptHistory(Mapping[str, Any]):
    """prompt_id -> entry; iterates oldest first by start time. A page or a
    streamed answer writes the entries' text as is (no parse, no dump)."""

    def __init__(self, max_items: int, texts: Texts | None = None) -> None:
        self.max_items = max_items
        self._texts: Texts = texts if texts is not None else HeldTexts()
        self._keys: dict[str, Key] = {}
        self._order: list[Key] = []
        self._seq = itertools.count()

    @classmethod
    def of_keys(cls, max_items: int, texts: Texts, keys: Iterable[Key]) -> KeptHistory:
        """An index over texts already held (a restart): the keys in any
        order, arrivals going on after the highest given. Call `trim` next."""
        kept = cls(max_items, texts)
        kept._keys = {key[2]: key for key in keys}
        kept._order = sorted(kept._keys.values())
        kept._seq = itertools.count(max((key[1] for key in kept._order), default=-1) + 1)
        return kept

    @classmethod
    def of_raw(cls, max_items: int, rows: Iterable[Raw]) -> KeptHistory:
        """A copy of entries already in order, given as (start time, id,
        JSON) the way a shared store reads them: no entry is parsed."""
        texts = HeldTexts()
        kept = cls(max_items, texts)
        for start, prompt_id, text in rows:
            key = (start, next(kept._seq), prompt_id)
            kept._keys[prompt_id] = key
            kept._order.append(key)
            texts.keep(key, text)
        return kept

    def __getitem__(self, prompt_id: str) -> Any:
        text = self.raw(prompt_id)
        if text is None:
            raise KeyError(prompt_id)
        return json.loads(text)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return (key[2] for key in self._order)

    def put(self, prompt_id: str, entry: Any) -> list[str]:
        """Keep an entry (replacing one under the same id); the ids that the
        limit pushed out, oldest first."""
        return self.put_raw(entry_time(entry), prompt_id, json.dumps(entry))

    def put_raw(self, start: float, prompt_id: str, text: str) -> list[str]:
        """`put` of an entry given as its start time and JSON text."""
        self.remove(prompt_id)
        key = (start, next(self._seq), prompt_id)
        self._keys[prompt_id] = key
        self._texts.keep(key, text)
        if not self._order or key > self._order[-1]:
            self._order.append(key)  # the usual case: the newest job
        else:
            bisect.insort(self._order, key)
        return self.trim()

    def trim(self) -> list[str]:
        """Drop the oldest past `max_items`; their ids, oldest first."""
        return self._drop(len(self._order) - self.max_items)

    def expire(self, cutoff: float) -> list[str]:
        """Drop the entries that started before `cutoff` (ms); their ids."""
        return self._drop(bisect.bisect_left(self._order, (cutoff, -1, "")))

    def expires(self, cutoff: float) -> bool:
        """Whether `expire(cutoff)` would drop anything."""
        return bool(self._order) and self._order[0][0] < cutoff

    def _drop(self, count: int) -> list[str]:
        if count <= 0:
            return []
        gone = [key[2] for key in self._order[:count]]
        del self._order[:count]
        for pid in gone:
            del self._keys[pid]
        self._texts.drop(gone)
        return gone

    def remove(self, prompt_id: str) -> None:
        key = self._keys.pop(prompt_id, None)
        if key is not None:
            del self._order[bisect.bisect_left(self._order, key)]
            self._texts.drop([prompt_id])

    def raw(self, prompt_id: str) -> str | None:
        """An entry's JSON text."""
        return self._texts.text(prompt_id) if prompt_id in self._keys else None

    def newest(self, count: int) -> list[Raw]:
        """The newest `count` entries as (start time, id, JSON), oldest first."""
        return self._raw(self._order[max(0, len(self._order) - count) :])

    def oldest(self, count: int) -> list[Raw]:
        return self._raw(self._order[:count])

    def _raw(self, keys: list[Key]) -> list[Raw]:
        texts = self._texts.texts([key[2] for key in keys])
        return [(key[0], key[2], texts[key[2]]) for key in keys if key[2] in texts]

    def ordered(self) -> list[Key]:
        """A snapshot of the order (the keys only), for a long read that may
        span writes."""
        return list(self._order)
