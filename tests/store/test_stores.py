"""Both stores keep the same promises; SQLite keeps them across a reopen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from balancer.store import MemoryStore, Pin, SqliteStore, Store, StoredJob
from balancer.store.sqlite import StoreInUse


def job(prompt_id: str, number: float, **kw: object) -> StoredJob:
    fields: dict[str, object] = {"request": {"prompt": {"1": {}}}, "digest": "d", "client_id": "c"}
    fields.update(kw)
    return StoredJob(prompt_id=prompt_id, number=number, **fields)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    if request.param == "memory":
        shared = MemoryStore()
        return lambda: shared
    return lambda: SqliteStore(tmp_path / "balancer.db")


def test_pins_jobs_and_history_round_trip(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.put_pin(Pin("p1", "gpu0", "d", b'{"prompt_id": "p1"}', "c", "alice"))
    store.put_job(job("p2", 2.0))
    store.put_job(job("p1", -1.0, state="dispatched", backend="gpu0", attempts=1, answer=b"ok"))
    store.put_history("p0", {"status": {"status_str": "success"}})
    assert store.get_pin("p1") == Pin("p1", "gpu0", "d", b'{"prompt_id": "p1"}', "c", "alice")
    assert [p.prompt_id for p in store.pins_of("gpu0")] == ["p1"]
    assert [j.prompt_id for j in store.unfinished_jobs()] == ["p1", "p2"], "by number"
    assert store.get_job("p1") == job(
        "p1", -1.0, state="dispatched", backend="gpu0", attempts=1, answer=b"ok"
    )
    assert store.histories() == {"p0": {"status": {"status_str": "success"}}}
    store.remove_job("p1")
    store.remove_pin("p1")
    store.remove_history("p0")
    assert store.get_job("p1") is None and store.get_pin("p1") is None
    assert store.get_history("p0") is None


def test_sqlite_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "b.db")
    first.put_pin(Pin("p1", "gpu0", "d", b"answer"))
    first.put_job(job("p2", 5.0))
    first.put_history("p3", {"outputs": {}})
    first.close()
    again = SqliteStore(tmp_path / "b.db")
    assert again.get_pin("p1") == Pin("p1", "gpu0", "d", b"answer")
    assert again.get_job("p2") == job("p2", 5.0)
    assert again.get_history("p3") == {"outputs": {}}


def test_two_balancers_never_share_one_store(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "b.db")
    with pytest.raises(StoreInUse):
        SqliteStore(tmp_path / "b.db")
    first.close()
    SqliteStore(tmp_path / "b.db").close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_pins_expire_with_their_history_entry(kind: str, tmp_path: Path) -> None:
    def open_store() -> Store:
        path = tmp_path / "b.db"
        return MemoryStore(max_history=2) if kind == "memory" else SqliteStore(path, 2)

    store = open_store()
    for i in range(3):
        store.put_pin(Pin(f"p{i}", "gpu0", "d", b"answer"))
        start = ["execution_start", {"prompt_id": f"p{i}", "timestamp": i}]
        store.put_history(f"p{i}", {"status": {"messages": [start]}})
    assert store.get_history("p0") is None and store.get_pin("p0") is None
    assert [p.prompt_id for p in store.pins_of("gpu0")] == ["p1", "p2"]
    if isinstance(store, SqliteStore):
        store.close()
        again = SqliteStore(tmp_path / "b.db", 2)
        assert list(again.histories()) == ["p1", "p2"] and again.get_pin("p0") is None
        again.close()
