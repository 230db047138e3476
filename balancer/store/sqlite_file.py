"""The SQLite store's file: its schema, opened in WAL mode, and the lock
that keeps a second balancer process off it."""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path
from typing import TextIO

SCHEMA = """
CREATE TABLE IF NOT EXISTS pins (
    prompt_id TEXT PRIMARY KEY, backend TEXT NOT NULL, digest TEXT NOT NULL,
    answer BLOB NOT NULL, client_id TEXT, tenant TEXT);
CREATE INDEX IF NOT EXISTS pins_backend ON pins (backend);
CREATE TABLE IF NOT EXISTS jobs (prompt_id TEXT PRIMARY KEY, number REAL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, prompt_id TEXT UNIQUE NOT NULL, entry TEXT NOT NULL);
"""


class StoreInUse(RuntimeError):
    """Another balancer holds this store: two would both restore its jobs."""


class StoreUnusable(RuntimeError):
    """The file is not a balancer database (empty, or not SQLite at all):
    starting empty would silently drop every pin and job it should hold."""


def open_database(path: str) -> sqlite3.Connection:
    """The database at `path` in WAL mode, its tables made; StoreUnusable
    when the file is not a balancer database."""
    if path != ":memory:" and Path(path).is_file() and Path(path).stat().st_size == 0:
        raise StoreUnusable(
            f"{path} is empty (0 bytes), not a balancer database; move it away to start afresh"
        )
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreUnusable(f"{path} is not a balancer database: {exc}") from None
    return db


def lock_beside(path: Path) -> TextIO:
    """An exclusive lock beside the database, held while the store is open."""
    handle = open(f"{path}.lock", "w")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreInUse(f"{path} is in use by another balancer process") from None
    return handle
