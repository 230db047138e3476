"""Kept history entries, held in time order so a page costs its own size.

GET /history pages over every backend's entries and the balancer's kept
copies, oldest first by the job's start time. The kept copies are held
sorted by that time (ties in arrival order), so the newest 64 are the last 64
of a list, found without copying or sorting the other 100,000. Past
`max_items` the oldest entries go.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

Key = tuple[float, int, str]  # (start time, arrival, prompt_id)
Raw = tuple[float, str, str]  # (start time, prompt_id, the entry's JSON)


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


class KeptHistory(Mapping[str, Any]):
    """prompt_id -> entry; iterates oldest first by start time.

    Entries are held as their JSON text: a page or a streamed answer writes
    that text as is (no parse, no dump), the garbage collector has nothing
    to walk in 10,000 entries, and each costs its text's size in memory.
    """

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._entries: dict[str, tuple[Key, str]] = {}
        self._order: list[Key] = []
        self._seq = itertools.count()

    @classmethod
    def of_raw(cls, max_items: int, rows: Iterable[Raw]) -> KeptHistory:
        """A copy of entries already in order, given as (start time, id,
        JSON) the way a shared store reads them: no entry is parsed."""
        kept = cls(max_items)
        for start, prompt_id, text in rows:
            key = (start, next(kept._seq), prompt_id)
            kept._entries[prompt_id] = (key, text)
            kept._order.append(key)
        return kept

    def __getitem__(self, prompt_id: str) -> Any:
        return json.loads(self._entries[prompt_id][1])

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

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
        self._entries[prompt_id] = (key, text)
        if not self._order or key > self._order[-1]:
            self._order.append(key)  # the usual case: the newest job
        else:
            bisect.insort(self._order, key)
        excess = len(self._order) - self.max_items
        if excess <= 0:
            return []
        gone = [key[2] for key in self._order[:excess]]
        del self._order[:excess]
        for pid in gone:
            del self._entries[pid]
        return gone

    def remove(self, prompt_id: str) -> None:
        held = self._entries.pop(prompt_id, None)
        if held is not None:
            del self._order[bisect.bisect_left(self._order, held[0])]

    def raw(self, prompt_id: str) -> str | None:
        """An entry's JSON text."""
        held = self._entries.get(prompt_id)
        return None if held is None else held[1]

    def newest(self, count: int) -> list[Raw]:
        """The newest `count` entries as (start time, id, JSON), oldest first."""
        return self._raw(self._order[max(0, len(self._order) - count) :])

    def oldest(self, count: int) -> list[Raw]:
        return self._raw(self._order[:count])

    def _raw(self, keys: list[Key]) -> list[Raw]:
        return [(key[0], key[2], self._entries[key[2]][1]) for key in keys]

    def ordered(self) -> list[Key]:
        """A snapshot of the order (the keys only), for a long read that may
        span writes."""
        return list(self._order)
