"""Retention keeps the upload store bounded, never evicting a file a job
needs: the same rules for the file store (one balancer) and the Redis store
(several replicas, on a real redis-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as redis
from support import FakeClock, PoolFactory
from upload_support import i2i, png, upload

from balancer.config.routing_settings import RoutingSettings
from balancer.config.storage_settings import UploadSettings
from balancer.files.index import JsonIndex
from balancer.files.paths import FileKey
from balancer.files.redis_uploads import RedisUploads
from balancer.files.store import FileUploads
from balancer.files.uploads import Uploads
from balancer.proxy.file_context import FILES

MakeStore = Callable[..., Uploads]


@pytest.fixture(params=["file", "redis"])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[MakeStore]:
    """Opens the upload store of one kind in `tmp_path` (again: reopened)."""
    clients: list[redis.Redis] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""

    def make(**settings: float) -> Uploads:
        limits = UploadSettings(**settings)  # type: ignore[arg-type]
        if request.param == "file":
            return FileUploads(tmp_path, JsonIndex(tmp_path / "index.json"), limits, clock)
        client = redis.Redis.from_url(url)
        clients.append(client)
        return RedisUploads(client, "t:", tmp_path, limits, 5.0, clock)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def put(store: Uploads, name: str, data: bytes) -> str:
    sha = await store.add_bytes(data)
    await store.assign(FileKey("input", "", name), sha, overwrite=False)
    return sha


async def test_old_blobs_go_first_and_protected_ones_stay(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = make_store(max_age=100.0, max_bytes=10_000)
    a = await put(store, "a.png", b"a" * 10)
    clock.advance(50)
    b = await put(store, "b.png", b"b" * 10)
    clock.advance(60)  # a is 110 s old, b 60 s
    assert await store.evict({a}) == []
    assert await store.evict(set()) == [a]
    assert await store.lookup(FileKey("input", "", "a.png")) is None
    assert await store.blob_file(a) is None
    assert await store.lookup(FileKey("input", "", "b.png")) == b
    reopened = make_store(max_age=100.0, max_bytes=10_000)
    assert await reopened.lookup(FileKey("input", "", "b.png")) == b
    assert await reopened.input_images() == ["b.png"]
    blob = await reopened.blob_file(b)
    assert blob is not None and blob.read_bytes() == b"b" * 10


async def test_size_cap_trims_oldest_first(make_store: MakeStore, clock: FakeClock) -> None:
    store = make_store(max_age=1e9, max_bytes=25)
    shas = []
    for i in range(3):
        clock.advance(1)
        shas.append(await put(store, f"{i}.png", bytes([i]) * 10))
    assert await store.evict({shas[0]}) == [shas[1]]
    assert await store.has_blob(shas[0]) and await store.has_blob(shas[2])
    assert not await store.has_blob(shas[1])


async def test_naming_follows_comfyui_in_both_stores(make_store: MakeStore) -> None:
    store = make_store()
    key = FileKey("input", "sub", "a.png")
    one, two = await store.add_bytes(b"one"), await store.add_bytes(b"two")
    assert await store.assign(key, one, overwrite=False) == key
    assert await store.assign(key, two, overwrite=False) == FileKey("input", "sub", "a (1).png")
    assert await store.assign(key, one, overwrite=False) == key, "same bytes keep the name"
    assert await store.assign(key, two, overwrite=True) == key
    assert await store.lookup_many([key, FileKey("input", "", "a.png")]) == {key: two}


async def test_a_file_of_a_queued_job_is_never_evicted(make_pool: PoolFactory) -> None:
    overrides = {
        "uploads": UploadSettings(max_age=60.0),
        "routing": RoutingSettings(max_pending_per_backend=None),
    }
    pool = await make_pool(1, settings_overrides=overrides)
    files = pool.client.app[FILES]
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    await upload(pool.client, png((1, 2, 3)), "needed.png")
    await upload(pool.client, png((4, 5, 6)), "idle.png")
    answer = await pool.submit(i2i("needed.png"))
    pool.clock.advance(3600)
    await upload(pool.client, png((7, 8, 9)), "new.png")  # runs retention
    assert await files.store.lookup(FileKey("input", "", "needed.png")) is not None
    assert await files.store.lookup(FileKey("input", "", "idle.png")) is None
    emulator.resume()
    await pool.wait_idle()
    await pool.probe()  # the job is over (history), so its file may go now
    job = await pool.balancer.store.get_job(answer["prompt_id"])
    assert job is not None and job.finished
    pool.clock.advance(3600)
    await files.placement.evict()
    assert await files.store.lookup(FileKey("input", "", "needed.png")) is None
