"""Uploads are shared by every replica through Redis (blobs in chunks, the
index and retention in scripts): a file uploaded through one replica runs
in a prompt posted to another, names never collide across the pool, one
tenant never reaches another's upload through any replica, and
`uploads.max_bytes` holds for the pool. Each replica has its own data_dir,
so nothing here passes through a shared disk."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import Pool
from upload_support import first_output, form, i2i, invert, pixel, png, upload, view

from balancer.bench.redisserver import RedisServer
from balancer.config.access_settings import AuthSettings
from balancer.config.storage_settings import UploadSettings
from balancer.files.redis_uploads import CHUNK
from balancer.files.uploads import uploads_dir
from tests.auth.auth_helpers import api_key, as_

from .conftest import ReplicaFactory, assert_store_unavailable

ESCAPES = ["_t_bob/../_t_alice", "_t_bob/x/../../_t_alice", "_t_bob\\..\\_t_alice"]


async def test_an_upload_through_one_replica_runs_in_a_prompt_posted_to_another(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2)
    color = (10, 120, 230)
    status, answer = await upload(r0.client, png(color, size=(16, 16)), "shared.png")
    assert status == 200 and answer["name"] == "shared.png"
    prompt_id = (await r1.submit(i2i("shared.png")))["prompt_id"]
    await r1.settle([prompt_id])
    result = await view(r1, await first_output(r1, prompt_id))
    assert pixel(result)[:3] == invert(color)
    params = {"filename": "shared.png", "type": "input"}
    seen = await r1.client.get("/view", params=params)
    assert seen.status == 200 and pixel(await seen.read())[:3] == color


async def test_a_blob_larger_than_one_chunk_comes_back_whole(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    body = png((1, 2, 3)) + bytes(range(256)) * (2 * CHUNK // 256 + 7)
    status, _ = await upload(r0.client, body, "big.png")
    assert status == 200
    resp = await r1.client.get("/view", params={"filename": "big.png", "type": "input"})
    assert resp.status == 200 and await resp.read() == body
    ranged = await r1.client.get(
        "/view", params={"filename": "big.png", "type": "input"}, headers={"Range": "bytes=5-9"}
    )
    assert ranged.status == 206 and await ranged.read() == body[5:10]


async def test_names_are_given_once_across_the_pool(make_replicas: ReplicaFactory) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    answers = await asyncio.gather(
        *(upload(r.client, png((i, i, i)), "same.png") for i, r in enumerate([r0, r1, r0, r1]))
    )
    names = sorted(body["name"] for _, body in answers)
    assert names == ["same (1).png", "same (2).png", "same (3).png", "same.png"]
    _, again = await upload(r1.client, png((2, 2, 2)), "same.png")  # bytes r0 stored
    assert again["name"] == answers[2][1]["name"], "the same bytes keep their name"


async def tenants(make_replicas: ReplicaFactory, **overrides: Any) -> list[Pool]:
    keys = (api_key("alice"), api_key("bob"))
    return await make_replicas(2, backends=1, auth=AuthSettings(keys=keys), **overrides)


async def alice_uploads(pool: Pool, data: bytes) -> None:
    resp = await pool.client.post(
        "/upload/image", data=form(data, "secret.png"), headers=as_("alice")
    )
    assert await resp.json() == {"name": "secret.png", "subfolder": "_t_alice", "type": "input"}


@pytest.mark.parametrize("subfolder", ["_t_alice", *ESCAPES])
async def test_another_tenants_upload_stays_out_of_reach_on_every_replica(
    make_replicas: ReplicaFactory, subfolder: str
) -> None:
    r0, r1 = await tenants(make_replicas)
    secret = png((201, 13, 77))
    await alice_uploads(r0, secret)
    params = {"filename": "secret.png", "subfolder": subfolder, "type": "input"}
    for replica in (r0, r1):
        resp = await replica.client.get("/view", params=params, headers=as_("bob"))
        assert resp.status == 404 and secret not in await resp.read()
        value = f"{subfolder.replace(chr(92), '/')}/secret.png"
        sent = await replica.client.post("/prompt", json={"prompt": i2i(value)}, headers=as_("bob"))
        assert sent.status == 400
        assert (await sent.json())["error"]["type"] == "prompt_outputs_failed_validation"
        overwrite = form(png((1, 2, 3)), "secret.png", subfolder=subfolder, overwrite="true")
        resp = await replica.client.post("/upload/image", data=overwrite, headers=as_("bob"))
        assert resp.status in (200, 400)
    own = {"filename": "secret.png", "subfolder": "_t_alice", "type": "input"}
    mine = await r1.client.get("/view", params=own, headers=as_("alice"))
    assert mine.status == 200 and await mine.read() == secret
    assert all(not e.history for e in r0.emulators.values()), "nothing reached a backend"


async def test_an_encoded_dot_segment_resolves_before_the_check(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await tenants(make_replicas)
    await alice_uploads(r0, png((201, 13, 77)))
    query = "filename=secret.png&type=input&subfolder=_t_bob%2F%2E%2E%2F_t_alice"
    resp = await r1.client.get(f"/view?{query}", headers=as_("bob"))
    assert resp.status == 404


async def test_max_bytes_holds_for_the_pool_and_spares_what_a_queued_job_needs(
    make_replicas: ReplicaFactory,
) -> None:
    needed = png((9, 0, 0), size=(32, 32))
    others = [bytes([i]) * 1000 for i in range(1, 5)]
    cap = len(needed) + 2000  # room for the needed file and two others
    r0, r1 = await make_replicas(2, backends=1, uploads=UploadSettings(max_bytes=cap))
    r1.emulators["gpu0"].pause()
    await upload(r0.client, needed, "0.png")
    waiting = (await r1.submit(i2i("0.png")))["prompt_id"]  # r1 needs 0.png
    for i, data in enumerate(others, 1):  # alternate replicas; each runs retention
        r0.clock.advance(1)
        assert (await upload((r0, r1)[i % 2].client, data, f"{i}.png"))[0] == 200
    present = []
    for name in ("0.png", "1.png", "2.png", "3.png", "4.png"):
        resp = await r0.client.get("/view", params={"filename": name, "type": "input"})
        if resp.status == 200:
            present.append(name)
    assert present == ["0.png", "3.png", "4.png"], "the oldest went, not the one a job needs"
    uploads = r0.balancer.replicas.uploads  # type: ignore[union-attr]
    total = await uploads.client.get(uploads.prefix + "total")
    assert int(total) == cap, "the pool's bytes, counted once"
    r1.emulators["gpu0"].resume()
    await r1.settle([waiting])
    assert pixel(await view(r1, await first_output(r1, waiting)))[:3] == invert((9, 0, 0))


async def test_with_redis_unreachable_uploads_are_refused_with_a_clear_503(
    make_replicas: ReplicaFactory, own_redis: RedisServer
) -> None:
    (r0,) = await make_replicas(1, redis_at=own_redis.url)
    status, _ = await upload(r0.client, png((1, 1, 1)), "before.png")
    assert status == 200
    own_redis.stop()
    resp = await r0.client.post("/upload/image", data=form(png((2, 2, 2)), "after.png"))
    await assert_store_unavailable(resp)
    resp = await r0.client.get("/view", params={"filename": "before.png", "type": "input"})
    await assert_store_unavailable(resp)
    spool = uploads_dir(r0.balancer.settings) / "tmp"
    assert not any(spool.iterdir()), "a refused upload leaves nothing behind"


async def test_a_redis_at_its_memory_limit_refuses_uploads_with_a_clear_503(
    make_replicas: ReplicaFactory, own_redis: RedisServer
) -> None:
    (r0,) = await make_replicas(1, redis_at=own_redis.url)
    uploads = r0.balancer.replicas.uploads  # type: ignore[union-attr]
    used = int((await uploads.client.info("memory"))["used_memory"])
    await uploads.client.config_set("maxmemory", used + CHUNK)  # noeviction: writes fail
    big = bytes(range(256)) * (4 * CHUNK // 256)
    resp = await r0.client.post("/upload/image", data=form(big, "big.png"))
    await assert_store_unavailable(resp)
    await uploads.client.config_set("maxmemory", 0)
