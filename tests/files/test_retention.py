"""Retention keeps the upload store bounded, never evicting a file a job needs."""

from __future__ import annotations

from pathlib import Path

from support import PoolFactory
from upload_support import i2i, png, upload

from balancer.config.model import RoutingSettings, UploadSettings
from balancer.files.index import JsonIndex
from balancer.files.paths import FileKey
from balancer.files.store import UploadStore
from balancer.proxy.file_context import FILES


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_store(root: Path, clock: Clock, **settings: float) -> UploadStore:
    return UploadStore(root, JsonIndex(root / "index.json"), UploadSettings(**settings), clock)  # type: ignore[arg-type]


def put(store: UploadStore, name: str, data: bytes) -> str:
    sha = store.add_bytes(data)
    store.assign(FileKey("input", "", name), sha, overwrite=False)
    return sha


def test_old_blobs_go_first_and_protected_ones_stay(tmp_path: Path) -> None:
    clock = Clock()
    store = make_store(tmp_path, clock, max_age=100.0, max_bytes=10_000)
    a = put(store, "a.png", b"a" * 10)
    clock.now += 50
    b = put(store, "b.png", b"b" * 10)
    clock.now += 60  # a is 110 s old, b 60 s
    assert store.evict({a}) == []
    assert store.evict(set()) == [a]
    assert store.lookup(FileKey("input", "", "a.png")) is None
    assert not store.blob_path(a).exists()
    assert store.lookup(FileKey("input", "", "b.png")) == b
    reopened = make_store(tmp_path, clock, max_age=100.0, max_bytes=10_000)
    assert reopened.lookup(FileKey("input", "", "b.png")) == b
    assert reopened.index.names() == [FileKey("input", "", "b.png")]


def test_size_cap_trims_oldest_first(tmp_path: Path) -> None:
    clock = Clock()
    store = make_store(tmp_path, clock, max_age=1e9, max_bytes=25)
    shas = []
    for i in range(3):
        clock.now += 1
        shas.append(put(store, f"{i}.png", bytes([i]) * 10))
    assert store.evict({shas[0]}) == [shas[1]]
    assert store.has_blob(shas[0]) and store.has_blob(shas[2])


async def test_a_file_of_a_queued_job_is_never_evicted(make_pool: PoolFactory) -> None:
    overrides = {
        "uploads": UploadSettings(max_age=60.0),
        "routing": RoutingSettings(max_pending_per_backend=None),
    }
    pool = await make_pool(1, settings_overrides=overrides)
    files = pool.client.app[FILES]
    clock = Clock()
    files.store.now = clock
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    await upload(pool.client, png((1, 2, 3)), "needed.png")
    await upload(pool.client, png((4, 5, 6)), "idle.png")
    answer = await pool.submit(i2i("needed.png"))
    clock.now += 3600
    await upload(pool.client, png((7, 8, 9)), "new.png")  # runs retention
    assert files.store.lookup(FileKey("input", "", "needed.png")) is not None
    assert files.store.lookup(FileKey("input", "", "idle.png")) is None
    emulator.resume()
    await pool.wait_idle()
    await pool.probe()  # the job is over (history), so its file may go now
    job = await pool.balancer.store.get_job(answer["prompt_id"])
    assert job is not None and job.finished
    clock.now += 3600
    await files.placement.evict()
    assert files.store.lookup(FileKey("input", "", "needed.png")) is None
