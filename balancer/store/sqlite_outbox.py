"""The SQLite store's webhook outbox (outbox.py): one row per owed webhook,
written in the transaction of the move that ended its job."""

from __future__ import annotations

import sqlite3

from balancer.store.outbox import Owed

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY, prompt_id TEXT NOT NULL, url TEXT NOT NULL, body BLOB NOT NULL,
    holder TEXT NOT NULL, until REAL NOT NULL);
"""
COLUMNS = "key, prompt_id, url, body, holder, until"


def put(db: sqlite3.Connection, owed: Owed) -> None:
    """Inside the caller's transaction."""
    db.execute(
        f"INSERT OR REPLACE INTO outbox ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (owed.key, owed.prompt_id, owed.url, owed.body, owed.holder, owed.until),
    )


def claim(db: sqlite3.Connection, holder: str, now: float, until: float, mine: bool) -> list[Owed]:
    with db:
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute(
            f"SELECT {COLUMNS} FROM outbox WHERE until <= ? OR (? AND holder = ?) ORDER BY rowid",
            (now, mine, holder),
        ).fetchall()
        db.executemany(
            "UPDATE outbox SET holder=?, until=? WHERE key=?", [(holder, until, r[0]) for r in rows]
        )
    return [Owed(r[0], r[1], r[2], bytes(r[3]), holder, until) for r in rows]


def hold(db: sqlite3.Connection, key: str, holder: str, until: float) -> bool:
    cursor = db.execute("UPDATE outbox SET until=? WHERE key=? AND holder=?", (until, key, holder))
    return cursor.rowcount == 1


def settle(db: sqlite3.Connection, key: str) -> None:
    db.execute("DELETE FROM outbox WHERE key=?", (key,))
