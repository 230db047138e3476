"""The SQLite store: the embedded default, so a balancer killed with SIGKILL
and restarted loses no accepted job, pin or finished history entry.

WAL journal with `synchronous=NORMAL`: every commit is durable against a
process crash (the WAL is written before the call returns), and fsyncs happen
only at checkpoints, so a write costs tens of microseconds, not a disk flush;
calls stay on the event loop thread. (An OS crash may lose the last commits.)
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from balancer.logs import get_logger
from balancer.store import sqlite_outbox as outbox
from balancer.store.kept import MAX_HISTORY, KeptHistory, Retention
from balancer.store.model import TERMINAL, JobStateName, OverQuota, Pin, StoredJob, Wall
from balancer.store.outbox import Owed
from balancer.store.sqlite_file import StoreUnusable, lock_beside, open_database
from balancer.store.sqlite_kept import load_index

log = get_logger("balancer.store")

PIN_COLUMNS = "prompt_id, backend, digest, answer, client_id, tenant"


def _skipped(table: str, key: object, exc: Exception) -> None:
    """A row that cannot be read is left alone and named, never fatal."""
    log.warning("store_row_skipped", table=table, key=str(key), error=type(exc).__name__)


class SqliteStore:
    def __init__(
        self,
        path: str | Path,
        max_history: int = MAX_HISTORY,
        *,
        max_age: float | None = None,
        wall: Wall = time.time,
    ) -> None:
        """`max_age`: kept entries whose job started longer ago than this
        (seconds, by `wall`) go, and their pins and ended job records with
        them. Past `max_history` ended jobs, the oldest ended go."""
        self._max_ended = max_history
        self._retention = Retention(max_history, max_age, wall)
        self._lock: TextIO | None = None
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._lock = lock_beside(Path(path))
        try:
            self._db = open_database(str(path))
            _add_job_columns(self._db)
            self._db.executescript(outbox.SCHEMA)
            # MAX(ended) runs at every job's end: an index, not a scan of every kept job.
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (ended)")
            # Kept history is read on every GET /history: its index is held
            # in memory, the entries stay on disk (sqlite_kept).
            self._history = load_index(self._db, max_history, _skipped)
        except (StoreUnusable, sqlite3.DatabaseError) as exc:
            self.close()
            if isinstance(exc, StoreUnusable):
                raise
            raise StoreUnusable(f"{path} is not a balancer database: {exc}") from None
        self._changing_history(self._history.trim)

    def close(self) -> None:
        if hasattr(self, "_db"):
            self._db.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ---- pins
    async def job_and_pin(self, prompt_id: str) -> tuple[StoredJob | None, Pin | None]:
        return await self.get_job(prompt_id), await self.get_pin(prompt_id)

    async def get_pin(self, prompt_id: str) -> Pin | None:
        row = self._db.execute(
            f"SELECT {PIN_COLUMNS} FROM pins WHERE prompt_id=?",
            (prompt_id,),
        ).fetchone()
        return _pin(row) if row else None

    async def put_pin(self, pin: Pin) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO pins VALUES (?, ?, ?, ?, ?, ?)",
            (pin.prompt_id, pin.backend, pin.digest, pin.answer, pin.client_id, pin.tenant),
        )

    async def remove_pin(self, prompt_id: str) -> None:
        self._db.execute("DELETE FROM pins WHERE prompt_id=?", (prompt_id,))

    async def pins_of(self, backend: str) -> list[Pin]:
        rows = self._db.execute(
            f"SELECT {PIN_COLUMNS} FROM pins WHERE backend=?",
            (backend,),
        )
        return [pin for r in rows if (pin := _pin(r)) is not None]

    # ---- jobs
    async def create(self, job: StoredJob, max_unfinished: int | None = None) -> bool:
        """The count and the insert run with no await between them: one
        step for the one process that holds the database."""
        at_cap = max_unfinished is not None and self._unfinished(job.tenant) >= max_unfinished
        if at_cap and not self._exists(job.prompt_id):
            raise OverQuota(job.tenant)
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO jobs (prompt_id, number, data, state, ended, backend, tenant) "
            "VALUES (?, ?, ?, ?, NULL, ?, ?)",
            (job.prompt_id, job.number, _dump(job), job.state, job.backend, job.tenant),
        )
        return cursor.rowcount == 1

    async def transition(
        self,
        prompt_id: str,
        from_states: Collection[str],
        to_state: JobStateName,
        fields: Mapping[str, Any],
        owed: Owed | None = None,
    ) -> StoredJob | None:
        with self._db:  # one transaction: read, check, write (and the webhook owed)
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT data FROM jobs WHERE prompt_id=?", (prompt_id,)
            ).fetchone()
            job = _read_job(prompt_id, row[0]) if row else None
            if job is None or job.state not in from_states:
                return None
            moved = replace(job, **{**fields, "state": to_state})
            ended = to_state in TERMINAL
            self._db.execute(
                "UPDATE jobs SET data=?, state=?, backend=?, ended=CASE WHEN ? THEN "
                "(SELECT COALESCE(MAX(ended), 0) + 1 FROM jobs) ELSE NULL END WHERE prompt_id=?",
                (_dump(moved), to_state, moved.backend, ended, prompt_id),
            )
            if ended:
                self._db.execute(
                    "DELETE FROM jobs WHERE ended <= (SELECT MAX(ended) FROM jobs) - ?",
                    (self._max_ended,),
                )
            if owed is not None:
                outbox.put(self._db, owed)
            return moved

    async def discard(self, prompt_id: str) -> None:
        self._db.execute("DELETE FROM jobs WHERE prompt_id=?", (prompt_id,))

    async def next_number(self) -> int:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO counters VALUES "
                "('number', (SELECT CAST(COALESCE(MAX(ABS(number)), 0) AS INTEGER) + 1 FROM jobs)) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1"
            )
            row = self._db.execute("SELECT value FROM counters WHERE name='number'").fetchone()
        return int(row[0])

    async def get_job(self, prompt_id: str) -> StoredJob | None:
        row = self._db.execute("SELECT data FROM jobs WHERE prompt_id=?", (prompt_id,)).fetchone()
        return _read_job(prompt_id, row[0]) if row else None

    async def unfinished_jobs(self) -> list[StoredJob]:
        rows = self._db.execute(
            "SELECT prompt_id, data FROM jobs WHERE ended IS NULL ORDER BY number"
        )
        return [job for r in rows if (job := _read_job(r[0], r[1])) is not None]

    async def jobs(self) -> list[StoredJob]:
        rows = self._db.execute("SELECT prompt_id, data FROM jobs ORDER BY number")
        return [job for r in rows if (job := _read_job(r[0], r[1])) is not None]

    async def jobs_on(self, backend: str) -> list[StoredJob]:
        rows = self._db.execute(
            "SELECT prompt_id, data FROM jobs WHERE backend=? AND ended IS NULL ORDER BY number",
            (backend,),
        )
        return [job for r in rows if (job := _read_job(r[0], r[1])) is not None]

    async def count_unfinished(self, tenant: str | None) -> int:
        return self._unfinished(tenant)

    async def count_waiting(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state='waiting'").fetchone()
        return int(row[0])

    def _unfinished(self, tenant: str | None) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE tenant IS ? AND ended IS NULL", (tenant,)
        ).fetchone()
        return int(row[0])

    def _exists(self, prompt_id: str) -> bool:
        found = self._db.execute("SELECT 1 FROM jobs WHERE prompt_id=?", (prompt_id,))
        return found.fetchone() is not None

    # ---- the webhook outbox
    async def claim_owed(
        self, holder: str, now: float, until: float, mine: bool = False
    ) -> list[Owed]:
        return outbox.claim(self._db, holder, now, until, mine)

    async def hold_owed(self, key: str, holder: str, until: float) -> bool:
        return outbox.hold(self._db, key, holder, until)

    async def settle_owed(self, key: str) -> None:
        outbox.settle(self._db, key)

    async def count_owed(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # ---- kept history
    async def put_history(self, prompt_id: str, entry: Any) -> None:
        self._changing_history(lambda: self._history.put(prompt_id, entry))

    def _changing_history(self, change: Callable[[], list[str]]) -> None:
        """One transaction: `change` (the ids it pushed out) and the entries
        past `max_age`, gone from disk with their pins and ended jobs (an
        unfinished job whose entry went, being ended, stays)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            gone = [(p,) for p in (*change(), *self._history.expire(self._retention.cutoff()))]
            self._db.executemany("DELETE FROM pins WHERE prompt_id=?", gone)
            self._db.executemany("DELETE FROM jobs WHERE prompt_id=? AND ended IS NOT NULL", gone)

    def _expire(self) -> None:
        if self._history.expires(self._retention.cutoff()):
            self._changing_history(list)

    async def get_history(self, prompt_id: str) -> Any | None:
        self._expire()
        return self._history.get(prompt_id)

    async def remove_history(self, prompt_id: str) -> None:
        self._history.remove(prompt_id)

    async def histories(self) -> KeptHistory:
        self._expire()
        return self._history


def _add_job_columns(db: sqlite3.Connection) -> None:
    """Stores written before job states were kept: add the state columns, and
    read the old names (`queued` in the balancer, `dispatched` to a backend)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "state" in columns:
        return
    for column in ("state TEXT", "ended INTEGER", "backend TEXT", "tenant TEXT"):
        db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
    for prompt_id, raw in list(db.execute("SELECT prompt_id, data FROM jobs")):
        job = _read_job(prompt_id, raw)
        if job is None:
            continue
        db.execute(
            "UPDATE jobs SET data=?, state=?, backend=?, tenant=? WHERE prompt_id=?",
            (_dump(job), job.state, job.backend, job.tenant, prompt_id),
        )
    db.execute("CREATE INDEX IF NOT EXISTS jobs_backend ON jobs (backend)")


def _dump(job: StoredJob) -> str:
    return json.dumps({**job.__dict__, "answer": job.answer.decode("utf-8", "replace")})


OLD_STATES = {"dispatched": "queued"}


def _job(raw: str) -> StoredJob:
    data = json.loads(raw)
    data["answer"] = data.get("answer", "").encode()
    for key in ("lost_from", "duplicates"):
        data[key] = tuple(data.get(key, ()))
    state = data.get("state", "waiting")
    if state == "queued" and data.get("backend") is None:
        state = "waiting"
    data["state"] = OLD_STATES.get(state, state)
    return StoredJob(**data)


def _read_job(prompt_id: str, raw: str) -> StoredJob | None:
    """A job row, or None (logged with its key) when it cannot be read."""
    try:
        return _job(raw)
    except (ValueError, TypeError, AttributeError) as exc:
        _skipped("jobs", prompt_id, exc)
        return None


def _pin(row: Any) -> Pin | None:
    try:
        if not all(isinstance(v, str) for v in row[:3]):
            raise TypeError("prompt_id, backend and digest must be text")
        return Pin(row[0], row[1], row[2], bytes(row[3]), row[4], row[5])
    except (TypeError, ValueError) as exc:
        _skipped("pins", row[0], exc)
        return None
