"""Every store keeps the same promises (memory, SQLite, Redis on a real
redis-server); SQLite and Redis keep them across a reopen."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from store_support import Reopen

from balancer.config import ConfigError, parse_settings
from balancer.store import Pin, SqliteStore, StoredJob
from balancer.store.model import OverQuota
from balancer.store.open import close_store, open_store
from balancer.store.sqlite_file import StoreInUse


def job(prompt_id: str, number: float, **kw: object) -> StoredJob:
    fields: dict[str, object] = {"request": {"prompt": {"1": {}}}, "digest": "d", "client_id": "c"}
    fields.update(kw)
    return StoredJob(prompt_id=prompt_id, number=number, **fields)  # type: ignore[arg-type]


EVERY_KIND = pytest.mark.parametrize("reopen_store", ["memory", "sqlite", "redis"], indirect=True)


@EVERY_KIND
async def test_pins_jobs_and_history_round_trip(reopen_store: Reopen) -> None:
    store = await reopen_store()
    await store.put_pin(Pin("p1", "gpu0", "d", b'{"prompt_id": "p1"}', "c", "alice"))
    assert await store.create(job("p2", 2.0))
    assert await store.create(job("p1", -1.0, state="dispatching", backend="gpu0", tenant="alice"))
    assert not await store.create(job("p1", 7.0)), "an id is recorded once"
    await store.put_history("p0", {"status": {"status_str": "success"}})
    assert await store.get_pin("p1") == Pin("p1", "gpu0", "d", b'{"prompt_id": "p1"}', "c", "alice")
    assert [p.prompt_id for p in await store.pins_of("gpu0")] == ["p1"]
    assert [j.prompt_id for j in await store.unfinished_jobs()] == ["p1", "p2"], "by number"
    assert [j.prompt_id for j in await store.jobs_on("gpu0")] == ["p1"]
    assert await store.count_unfinished("alice") == 1 and await store.count_unfinished(None) == 1
    assert await store.count_waiting() == 1, "p2 waits; p1 is being sent"
    assert await store.histories() == {"p0": {"status": {"status_str": "success"}}}
    await store.discard("p2")
    await store.remove_pin("p1")
    await store.remove_history("p0")
    assert await store.get_job("p2") is None and await store.get_pin("p1") is None
    assert await store.get_history("p0") is None


@EVERY_KIND
async def test_create_with_a_cap_refuses_a_tenant_at_it(reopen_store: Reopen) -> None:
    """The cap is counted in the same step as the write: at the cap nothing
    is written; an ended job frees its place; another tenant has its own."""
    store = await reopen_store()
    assert await store.create(job("a1", 1.0, tenant="alice"), max_unfinished=2)
    assert await store.create(job("a2", 2.0, tenant="alice"), max_unfinished=2)
    with pytest.raises(OverQuota):
        await store.create(job("a3", 3.0, tenant="alice"), max_unfinished=2)
    assert await store.get_job("a3") is None and await store.count_unfinished("alice") == 2
    assert not await store.create(job("a1", 1.0, tenant="alice"), max_unfinished=2), "known id"
    assert await store.create(job("b1", 4.0, tenant="bob"), max_unfinished=2)
    await store.transition("a1", ("waiting",), "cancelled", {"ended_at": 1.0})
    assert await store.create(job("a3", 3.0, tenant="alice"), max_unfinished=2)


@EVERY_KIND
async def test_a_transition_applies_only_from_the_expected_state(
    reopen_store: Reopen,
) -> None:
    store = await reopen_store()
    await store.create(job("p1", 1.0))
    moved = await store.transition("p1", ("waiting",), "dispatching", {"backend": "gpu0"})
    assert moved == job("p1", 1.0, state="dispatching", backend="gpu0")
    assert await store.transition("p1", ("waiting",), "cancelled", {}) is None, "it moved on"
    assert await store.get_job("p1") == moved
    assert await store.transition("nope", ("waiting",), "cancelled", {}) is None
    ended = await store.transition("p1", ("dispatching",), "failed", {"ended_at": 5.0})
    assert ended is not None and ended.finished
    assert await store.unfinished_jobs() == [] and await store.jobs_on("gpu0") == []
    assert [j.prompt_id for j in await store.jobs()] == ["p1"], "ended jobs stay for /api/jobs"


@EVERY_KIND
async def test_a_job_is_listed_on_the_backend_it_is_held_on_only(reopen_store: Reopen) -> None:
    """`jobs_on` follows each move: a job taken from its backend (lost,
    sent elsewhere), ended or discarded is no longer listed there."""
    store = await reopen_store()
    for prompt_id, number in (("p1", 1.0), ("p2", 2.0), ("p3", 0.5)):
        assert await store.create(job(prompt_id, number, state="queued", backend="gpu0"))

    async def on(backend: str) -> list[str]:
        return [j.prompt_id for j in await store.jobs_on(backend)]

    assert await on("gpu0") == ["p3", "p1", "p2"], "by number"
    await store.transition("p1", ("queued",), "waiting", {"backend": None, "lost_from": ("gpu0",)})
    assert await on("gpu0") == ["p3", "p2"], "lost: held nowhere"
    await store.transition("p1", ("waiting",), "dispatching", {"backend": "gpu1"})
    await store.transition("p1", ("dispatching",), "queued", {"backend": "gpu1"})
    assert await on("gpu0") == ["p3", "p2"] and await on("gpu1") == ["p1"]
    await store.transition("p2", ("queued",), "succeeded", {"ended_at": 9.0})
    await store.transition("p2", ("succeeded",), "succeeded", {"duplicates": ("gpu0",)})
    assert await on("gpu0") == ["p3"], "ended"
    await store.discard("p3")
    assert await on("gpu0") == [] and await on("gpu1") == ["p1"]
    assert await store.transition("p1", ("waiting",), "cancelled", {}) is None
    assert await on("gpu1") == ["p1"], "a move that does not apply changes nothing"
    await store.transition("p1", ("queued",), "running", {"started_at": 3.0})
    assert [(j.prompt_id, j.state) for j in await store.jobs_on("gpu1")] == [("p1", "running")]
    assert await on("gpu2") == []


@EVERY_KIND
async def test_numbers_keep_rising(reopen_store: Reopen) -> None:
    store = await reopen_store()
    assert [await store.next_number() for _ in range(3)] == [1, 2, 3]
    assert await (await reopen_store()).next_number() == 4, "the same store, reopened"


@EVERY_KIND
async def test_everything_is_kept_across_a_reopen(reopen_store: Reopen) -> None:
    first = await reopen_store()
    await first.put_pin(Pin("p1", "gpu0", "d", b"answer"))
    await first.create(job("p2", 5.0))
    await first.put_history("p3", {"outputs": {}})
    again = await reopen_store()
    assert await again.get_pin("p1") == Pin("p1", "gpu0", "d", b"answer")
    assert await again.get_job("p2") == job("p2", 5.0)
    assert await again.get_history("p3") == {"outputs": {}}


async def test_sqlite_reads_a_store_written_before_job_states(tmp_path: Path) -> None:
    """The older store kept `queued` (in the balancer) and `dispatched` jobs."""
    db = sqlite3.connect(tmp_path / "b.db")
    db.execute("CREATE TABLE jobs (prompt_id TEXT PRIMARY KEY, number REAL, data TEXT NOT NULL)")
    old = {"request": {}, "digest": "d", "client_id": None, "attempts": 1, "answer": ""}
    rows = [
        ("a", 3.0, {**old, "prompt_id": "a", "number": 3.0, "state": "queued", "backend": None}),
        ("b", 4.0, {**old, "prompt_id": "b", "number": 4.0, "state": "dispatched", "backend": "g"}),
    ]
    db.executemany("INSERT INTO jobs VALUES (?, ?, ?)", [(i, n, json.dumps(d)) for i, n, d in rows])
    db.commit()
    db.close()
    store = SqliteStore(tmp_path / "b.db")
    assert [(j.prompt_id, j.state) for j in await store.unfinished_jobs()] == [
        ("a", "waiting"),
        ("b", "queued"),
    ]
    assert await store.next_number() == 5, "numbers go on from the highest kept"


def test_two_balancers_never_share_one_store(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "b.db")
    with pytest.raises(StoreInUse):
        SqliteStore(tmp_path / "b.db")
    first.close()
    SqliteStore(tmp_path / "b.db").close()


@EVERY_KIND
async def test_pins_expire_with_their_history_entry(reopen_store: Reopen) -> None:
    store = await reopen_store(max_history=2)
    for i in range(3):
        await store.put_pin(Pin(f"p{i}", "gpu0", "d", b"answer"))
        start = ["execution_start", {"prompt_id": f"p{i}", "timestamp": i}]
        await store.put_history(f"p{i}", {"status": {"messages": [start]}})
    assert await store.get_history("p0") is None and await store.get_pin("p0") is None
    assert [p.prompt_id for p in await store.pins_of("gpu0")] == ["p1", "p2"]
    again = await reopen_store(max_history=2)
    assert list(await again.histories()) == ["p1", "p2"] and await again.get_pin("p0") is None


def started(prompt_id: str, seconds: float) -> dict[str, object]:
    """A history entry whose job started at `seconds` (epoch)."""
    start = ["execution_start", {"prompt_id": prompt_id, "timestamp": int(seconds * 1000)}]
    return {"status": {"status_str": "success", "messages": [start]}}


@EVERY_KIND
async def test_entries_past_max_age_go_with_their_pins(reopen_store: Reopen) -> None:
    """`history.max_age`: on an injected clock, an entry (and its pin) goes
    once its job started longer ago than the limit: at a write, at the next
    read with no write in between, and across a restart."""
    now = [1_000_000.0]
    store = await reopen_store(max_age=3600, wall=lambda: now[0])
    for pid, age in (("old", 7200), ("mid", 1800), ("new", 60)):
        await store.put_pin(Pin(pid, "gpu0", "d", b"answer"))
        await store.put_history(pid, started(pid, now[0] - age))
    assert await store.get_history("old") is None and await store.get_pin("old") is None
    assert list(await store.histories()) == ["mid", "new"]
    now[0] += 1801  # "mid" started 3601 s ago
    assert list(await store.histories()) == ["new"]
    assert await store.get_history("mid") is None and await store.get_pin("mid") is None
    assert [p.prompt_id for p in await store.pins_of("gpu0")] == ["new"]
    now[0] += 1800  # "new" is 3661 s old: a single read of it finds it gone
    assert await store.get_history("new") is None
    again = await reopen_store(max_age=3600, wall=lambda: now[0])
    assert list(await again.histories()) == [] and await again.get_pin("new") is None


@EVERY_KIND
async def test_without_max_age_old_entries_stay(reopen_store: Reopen) -> None:
    store = await reopen_store(wall=lambda: 1e12)
    await store.put_pin(Pin("ancient", "gpu0", "d", b"answer"))
    await store.put_history("ancient", started("ancient", 1.0))
    assert list(await store.histories()) == ["ancient"]
    assert await store.get_pin("ancient") is not None


async def test_history_max_age_is_a_duration_or_unset(tmp_path: Path) -> None:
    """Unset by default (no age limit, as ComfyUI); days are a unit; zero is
    refused; the store the settings open expires by it."""
    backends = [{"name": "gpu0", "url": "http://127.0.0.1:8188"}]
    assert parse_settings({"backends": backends}).history.max_age is None
    week = {"backends": backends, "history": {"max_age": "7d"}, "data_dir": str(tmp_path)}
    settings = parse_settings(week)
    assert settings.history.max_age == 7 * 86400
    store = open_store(settings)
    await store.put_history("last-year", started("last-year", time.time() - 365 * 86400))
    await store.put_history("today", started("today", time.time() - 3600))
    assert list(await store.histories()) == ["today"]
    await close_store(store)
    with pytest.raises(ConfigError) as info:
        parse_settings({"backends": backends, "history": {"max_age": 0}})
    assert info.value.errors == ["history.max_age: must be > 0"]


@EVERY_KIND
async def test_ended_jobs_go_with_their_history_entry(reopen_store: Reopen) -> None:
    """Under `history.max_age` an ended job's record (what `/api/jobs`
    lists) goes with its kept entry, across a restart too; a job that has not
    ended stays even when an entry under its id went."""
    now = [1_000_000.0]
    store = await reopen_store(max_age=3600, wall=lambda: now[0])
    for number, (pid, age) in enumerate((("old", 1800), ("new", 60), ("open", 1800)), 1):
        await store.create(job(pid, number))
        await store.put_history(pid, started(pid, now[0] - age))
    for pid in ("old", "new"):
        assert await store.transition(pid, {"waiting"}, "succeeded", {"ended_at": now[0]})
    assert [j.prompt_id for j in await store.jobs()] == ["old", "new", "open"]
    now[0] += 1801  # "old" and "open" started 3601 s ago
    assert list(await store.histories()) == ["new"]
    assert await store.get_job("old") is None
    assert [j.prompt_id for j in await store.jobs()] == ["new", "open"]
    assert [j.prompt_id for j in await store.unfinished_jobs()] == ["open"]
    again = await reopen_store(max_age=3600, wall=lambda: now[0])
    assert [j.prompt_id for j in await again.jobs()] == ["new", "open"]
