"""SQLite's kept history across restarts: only the index (start time,
arrival, id) is read at start; entries are read from disk when asked for,
in time order, and a file written before the `start` column migrates."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from balancer.store import Pin, SqliteStore

OLD_SCHEMA = """
CREATE TABLE history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, prompt_id TEXT UNIQUE NOT NULL, entry TEXT NOT NULL);
"""


def entry(prompt_id: str, started_ms: int) -> dict[str, Any]:
    start = ["execution_start", {"prompt_id": prompt_id, "timestamp": started_ms}]
    return {"prompt": [0, prompt_id], "status": {"messages": [start]}}


async def test_a_file_without_start_times_keeps_its_order(tmp_path: Path) -> None:
    path = tmp_path / "balancer.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    rows = [(pid, json.dumps(entry(pid, ms))) for pid, ms in (("b", 20), ("c", 30), ("a", 10))]
    db.executemany("INSERT INTO history (prompt_id, entry) VALUES (?, ?)", rows)
    db.commit()
    db.close()
    store = SqliteStore(path)
    kept = await store.histories()
    assert list(kept) == ["a", "b", "c"]
    assert [(pid, json.loads(raw)) for _, pid, raw in kept.newest(2)] == [
        ("b", entry("b", 20)),
        ("c", entry("c", 30)),
    ]
    await store.put_history("d", entry("d", 15))
    store.close()
    again = SqliteStore(path, max_history=3)
    assert list(await again.histories()) == ["d", "b", "c"], "the oldest went past the limit"
    assert await again.get_history("a") is None and await again.get_history("d") == entry("d", 15)
    again.close()


async def test_a_restart_reads_entries_from_disk_when_asked(tmp_path: Path) -> None:
    """What a reopened store answers is what the file holds at the time of
    the request, not a copy taken at start: the entries stay on disk."""
    path = tmp_path / "balancer.db"
    store = SqliteStore(path)
    for i in range(3):
        await store.put_pin(Pin(f"p{i}", "gpu0", "d", b"answer"))
        await store.put_history(f"p{i}", entry(f"p{i}", i))
    store.close()
    store = SqliteStore(path)
    changed = {**entry("p1", 1), "outputs": {"9": {"images": []}}}
    with sqlite3.connect(path) as db:
        db.execute("UPDATE history SET entry=? WHERE prompt_id='p1'", (json.dumps(changed),))
    kept = await store.histories()
    assert kept["p1"] == changed and await store.get_history("p1") == changed
    assert [pid for _, pid, _ in kept.oldest(2)] == ["p0", "p1"]
    await store.remove_history("p0")
    assert kept.raw("p0") is None and list(kept) == ["p1", "p2"]
    store.close()
    final = SqliteStore(path)
    assert list(await final.histories()) == ["p1", "p2"]
    final.close()
