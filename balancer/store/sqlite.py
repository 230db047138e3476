"""The SQLite store: the embedded default, so a balancer killed with SIGKILL
and restarted loses no accepted job, pin or finished history entry.

WAL journal with `synchronous=NORMAL`: every commit is durable against a
process crash (the WAL is written before the call returns), and fsyncs happen
only at checkpoints, so a write costs tens of microseconds, not a disk flush;
calls stay on the event loop thread. (An OS crash may lose the last commits.)
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from pathlib import Path
from typing import Any, TextIO

from balancer.store.kept import KeptHistory
from balancer.store.memory import MAX_HISTORY
from balancer.store.model import Pin, StoredJob

PIN_COLUMNS = "prompt_id, backend, digest, answer, client_id, tenant"

SCHEMA = """
CREATE TABLE IF NOT EXISTS pins (
    prompt_id TEXT PRIMARY KEY, backend TEXT NOT NULL, digest TEXT NOT NULL,
    answer BLOB NOT NULL, client_id TEXT, tenant TEXT);
CREATE INDEX IF NOT EXISTS pins_backend ON pins (backend);
CREATE TABLE IF NOT EXISTS jobs (prompt_id TEXT PRIMARY KEY, number REAL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, prompt_id TEXT UNIQUE NOT NULL, entry TEXT NOT NULL);
"""


class StoreInUse(RuntimeError):
    """Another balancer holds this store: two would both restore its jobs."""


def _lock(path: Path) -> TextIO:
    """An exclusive lock beside the database, held while the store is open."""
    handle = open(f"{path}.lock", "w")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreInUse(f"{path} is in use by another balancer process") from None
    return handle


class SqliteStore:
    def __init__(self, path: str | Path, max_history: int = MAX_HISTORY) -> None:
        self._lock: TextIO | None = None
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._lock = _lock(Path(path))
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # Kept history is read on every GET /history: serve it from memory,
        # write through to disk.
        rows = self._db.execute("SELECT prompt_id, entry FROM history ORDER BY seq")
        self._history = KeptHistory(max_history)
        gone = [pid for r in rows for pid in self._history.put(r[0], json.loads(r[1]))]
        self._forget(gone)

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ---- pins
    def get_pin(self, prompt_id: str) -> Pin | None:
        row = self._db.execute(
            f"SELECT {PIN_COLUMNS} FROM pins WHERE prompt_id=?",
            (prompt_id,),
        ).fetchone()
        return Pin(row[0], row[1], row[2], bytes(row[3]), row[4], row[5]) if row else None

    def put_pin(self, pin: Pin) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO pins VALUES (?, ?, ?, ?, ?, ?)",
            (pin.prompt_id, pin.backend, pin.digest, pin.answer, pin.client_id, pin.tenant),
        )

    def remove_pin(self, prompt_id: str) -> None:
        self._db.execute("DELETE FROM pins WHERE prompt_id=?", (prompt_id,))

    def pins_of(self, backend: str) -> list[Pin]:
        rows = self._db.execute(
            f"SELECT {PIN_COLUMNS} FROM pins WHERE backend=?",
            (backend,),
        )
        return [Pin(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    # ---- unfinished jobs
    def put_job(self, job: StoredJob) -> None:
        data = {**job.__dict__, "answer": job.answer.decode("utf-8", "replace")}
        self._db.execute(
            "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?)",
            (job.prompt_id, job.number, json.dumps(data)),
        )

    def get_job(self, prompt_id: str) -> StoredJob | None:
        row = self._db.execute("SELECT data FROM jobs WHERE prompt_id=?", (prompt_id,)).fetchone()
        return _job(row[0]) if row else None

    def remove_job(self, prompt_id: str) -> None:
        self._db.execute("DELETE FROM jobs WHERE prompt_id=?", (prompt_id,))

    def unfinished_jobs(self) -> list[StoredJob]:
        rows = self._db.execute("SELECT data FROM jobs ORDER BY number")
        return [_job(r[0]) for r in rows]

    # ---- kept history
    def put_history(self, prompt_id: str, entry: Any) -> None:
        gone = self._history.put(prompt_id, entry)
        with self._db:
            self._db.execute("DELETE FROM history WHERE prompt_id=?", (prompt_id,))
            self._db.execute(
                "INSERT INTO history (prompt_id, entry) VALUES (?, ?)",
                (prompt_id, json.dumps(entry)),
            )
            self._forget(gone)

    def _forget(self, prompt_ids: list[str]) -> None:
        """Pins and history expire together."""
        ids = [(p,) for p in prompt_ids]
        self._db.executemany("DELETE FROM history WHERE prompt_id=?", ids)
        self._db.executemany("DELETE FROM pins WHERE prompt_id=?", ids)

    def get_history(self, prompt_id: str) -> Any | None:
        return self._history.get(prompt_id)

    def remove_history(self, prompt_id: str) -> None:
        self._history.remove(prompt_id)
        self._db.execute("DELETE FROM history WHERE prompt_id=?", (prompt_id,))

    def histories(self) -> KeptHistory:
        return self._history


def _job(raw: str) -> StoredJob:
    data = json.loads(raw)
    data["answer"] = data.get("answer", "").encode()
    return StoredJob(**data)
