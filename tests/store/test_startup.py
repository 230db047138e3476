"""The store's start-up (issue 12, defect 10): a bad row is skipped and named
in the log; a file that is not a balancer database stops `serve` with one
clear line and no traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from store_support import serve_with_store
from structlog.testing import capture_logs

from balancer.store import Pin, SqliteStore, StoredJob


def job(prompt_id: str) -> StoredJob:
    return StoredJob(prompt_id, {"prompt": {}}, "d", None, 1.0, answer=b"{}")


async def test_bad_rows_are_skipped_and_logged_with_their_key(tmp_path: Path) -> None:
    path = tmp_path / "balancer.db"
    store = SqliteStore(path)
    assert await store.create(job("good-job"))
    await store.put_pin(Pin("good-pin", "gpu0", "d", b"{}", None, None))
    await store.put_history("good-entry", {"status": {}})
    store.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO history (prompt_id, entry) VALUES ('bad-entry', '{not json')")
    db.execute("INSERT INTO history (prompt_id, entry) VALUES ('list-entry', '[1]')")
    data = {**json.loads(db.execute("SELECT data FROM jobs").fetchone()[0]), "extra": 1}
    data["prompt_id"] = "odd-job"
    insert = "INSERT INTO jobs (prompt_id, number, data) VALUES (?, ?, ?)"
    db.execute(insert, ("odd-job", 2, json.dumps(data)))
    db.execute(insert, ("broken-job", 3, "nope"))
    db.execute("INSERT INTO pins VALUES ('bad-pin', 'gpu0', 5, 'x', NULL, NULL)")
    db.commit()
    db.close()
    with capture_logs() as logs:
        store = SqliteStore(path)
        jobs = [j.prompt_id for j in await store.unfinished_jobs()]
        pins = [p.prompt_id for p in await store.pins_of("gpu0")]
    assert jobs == ["good-job"] and pins == ["good-pin"]
    assert list(await store.histories()) == ["good-entry"]
    skipped = {(e["table"], e["key"]) for e in logs if e["event"] == "store_row_skipped"}
    assert skipped == {
        ("history", "bad-entry"),
        ("history", "list-entry"),
        ("jobs", "odd-job"),
        ("jobs", "broken-job"),
        ("pins", "bad-pin"),
    }
    store.close()


@pytest.mark.parametrize("content", [b"", b"this is not sqlite at all, just text" * 100])
def test_serve_refuses_a_file_that_is_not_a_database(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "balancer.db"
    db.write_bytes(content)
    done = serve_with_store(tmp_path, {"kind": "sqlite", "path": str(db)})
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert str(db) in line and "not a balancer database" in line
    assert db.read_bytes() == content  # left for the operator to look at
