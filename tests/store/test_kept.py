"""Kept history: time order whatever the arrival order, pages off the end, oldest go first."""

from __future__ import annotations

import json
from typing import Any

from balancer.store.kept import KeptHistory


def entry(started_ms: int) -> dict[str, Any]:
    start = ["execution_start", {"prompt_id": "x", "timestamp": started_ms}]
    return {"status": {"status_str": "success", "messages": [start]}}


def test_entries_are_held_by_start_time_not_arrival() -> None:
    kept = KeptHistory(max_items=100)
    for pid, started in (("b", 20), ("c", 30), ("a", 10), ("d", 40)):
        kept.put(pid, entry(started))
    assert list(kept) == ["a", "b", "c", "d"]
    assert [pid for _, pid, _ in kept.newest(2)] == ["c", "d"]
    assert [pid for _, pid, _ in kept.oldest(3)] == ["a", "b", "c"]
    assert [(pid, json.loads(raw)) for _, pid, raw in kept.newest(10)] == list(kept.items())


def test_replacing_and_removing_keep_the_order_whole() -> None:
    kept = KeptHistory(max_items=100)
    for i in range(5):
        kept.put(f"p{i}", entry(i))
    kept.put("p0", entry(99))  # the same id again: moves, never doubles
    kept.remove("p2")
    kept.remove("unknown")
    assert list(kept) == ["p1", "p3", "p4", "p0"]
    assert len(kept) == 4 and kept["p0"] == entry(99) and "p2" not in kept


def test_past_the_limit_the_oldest_by_time_go() -> None:
    kept = KeptHistory(max_items=3)
    assert kept.put("new", entry(50)) == []
    kept.put("mid", entry(30))
    kept.put("newer", entry(60))
    assert kept.put("old", entry(10)) == ["old"]
    assert kept.put("newest", entry(70)) == ["mid"]
    assert list(kept) == ["new", "newer", "newest"]


def test_expire_drops_entries_that_started_before_the_cutoff() -> None:
    kept = KeptHistory(max_items=100)
    for pid, started in (("b", 20), ("a", 10), ("c", 30)):
        kept.put(pid, entry(started))
    assert not kept.expires(10) and kept.expire(10) == []
    assert kept.expires(25) and kept.expire(25) == ["a", "b"]
    assert list(kept) == ["c"] and "a" not in kept and kept.raw("b") is None
