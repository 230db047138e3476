"""SQLite's kept history: the entries stay on disk and are read when a page
or an entry is asked for. A start reads only the index, (start time,
arrival, id) per entry, from the `start` and `seq` columns: 10,000 kept
entries cost a balancer their keys' size in memory, not their text's."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from balancer.store.kept import KeptHistory, Key, entry_time

Skipped = Callable[[str, object, Exception], None]


class SqliteTexts:
    """The `history` table as the index's Texts."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def text(self, prompt_id: str) -> str | None:
        row = self._db.execute("SELECT entry FROM history WHERE prompt_id=?", (prompt_id,))
        found = row.fetchone()
        return None if found is None else str(found[0])

    def texts(self, prompt_ids: Sequence[str]) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT prompt_id, entry FROM history "
            "WHERE prompt_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(prompt_ids)),),
        )
        return {str(pid): str(text) for pid, text in rows}

    def keep(self, key: Key, text: str) -> None:
        """A row left unread at start under the same id is replaced."""
        self._db.execute(
            "INSERT OR REPLACE INTO history (prompt_id, entry, start) VALUES (?, ?, ?)",
            (key[2], text, key[0]),
        )

    def drop(self, prompt_ids: Sequence[str]) -> None:
        self._db.executemany("DELETE FROM history WHERE prompt_id=?", [(p,) for p in prompt_ids])


def load_index(db: sqlite3.Connection, max_items: int, skipped: Skipped) -> KeptHistory:
    """The kept entries' index, entries left on disk. Rows without a start
    time (written before it was a column, or by hand) are read once to find
    it; one that cannot be read is named by `skipped` and left alone."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(history)")}
    if "start" not in columns:
        db.execute("ALTER TABLE history ADD COLUMN start REAL")
    unread = list(db.execute("SELECT prompt_id, entry FROM history WHERE start IS NULL"))
    with db:
        for prompt_id, text in unread:
            start = _start(prompt_id, text, skipped)
            if start is not None:
                db.execute("UPDATE history SET start=? WHERE prompt_id=?", (start, prompt_id))
    rows = db.execute("SELECT start, seq, prompt_id FROM history WHERE start IS NOT NULL")
    keys = [(float(start), int(seq), str(pid)) for start, seq, pid in rows]
    return KeptHistory.of_keys(max_items, SqliteTexts(db), keys)


def _start(prompt_id: Any, text: Any, skipped: Skipped) -> float | None:
    try:
        entry = json.loads(text)
        if not isinstance(entry, dict):
            raise TypeError("a history entry is a JSON object")
    except (TypeError, ValueError) as exc:
        skipped("history", prompt_id, exc)
        return None
    return entry_time(entry)
