"""User data is shared by every replica through Redis: a workflow saved
through one replica is listed and read through another, settings set
through two replicas at once are both kept, and one tenant never reaches
another's files through any replica. Each replica has its own data_dir."""

from __future__ import annotations

import asyncio

from balancer.bench.redisserver import RedisServer
from balancer.config.access_settings import AuthSettings
from tests.auth.auth_helpers import api_key, as_

from .conftest import ReplicaFactory, assert_store_unavailable

WORKFLOW = b'{"nodes": [], "secret": "alice"}'


async def test_a_workflow_saved_through_one_replica_is_there_on_another(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    assert await (await r1.client.get("/users")).json() == {"storage": "server", "migrated": False}
    saved = await r0.client.post("/api/userdata/workflows%2Fmine.json?overwrite=false", data=b"{}")
    assert saved.status == 200 and await saved.json() == "workflows/mine.json"
    again = await r1.client.post("/api/userdata/workflows%2Fmine.json?overwrite=false", data=b"{}")
    assert again.status == 409, "the other replica sees it exists"
    listing = await r1.client.get("/api/userdata?dir=workflows&recurse=true&full_info=true")
    assert [f["path"] for f in await listing.json()] == ["mine.json"]
    assert await (await r1.client.get("/api/userdata/workflows%2Fmine.json")).read() == b"{}"
    assert await (await r1.client.get("/users")).json() == {"storage": "server", "migrated": True}
    moved = await r1.client.post("/api/userdata/workflows%2Fmine.json/move/workflows%2Fb.json")
    assert await moved.json() == "workflows/b.json"
    v2 = await (await r0.client.get("/api/v2/userdata?path=workflows")).json()
    assert [(e["name"], e["type"]) for e in v2] == [("b.json", "file")]
    assert (await r0.client.delete("/api/userdata/workflows%2Fb.json")).status == 204
    assert (await r1.client.get("/api/userdata/workflows%2Fb.json")).status == 404


async def test_settings_set_through_two_replicas_at_once_are_all_kept(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    posts = [(r0, r1)[i % 2].client.post(f"/api/settings/Comfy.S{i}", json=i) for i in range(10)]
    assert [resp.status for resp in await asyncio.gather(*posts)] == [200] * 10
    for replica in (r0, r1):
        settings = await (await replica.client.get("/api/settings")).json()
        assert settings == {f"Comfy.S{i}": i for i in range(10)}


ESCAPES = [
    "..%2Falice%2Fworkflows%2Fmine.json",
    "%252E%252E%252Falice%252Fworkflows%252Fmine.json",
    "workflows%2F..%2F..%2Falice%2Fworkflows%2Fmine.json",
]


async def test_a_tenants_user_data_is_its_own_on_every_replica(
    make_replicas: ReplicaFactory,
) -> None:
    keys = (api_key("alice"), api_key("bob"))
    r0, r1 = await make_replicas(2, backends=1, auth=AuthSettings(keys=keys))
    alice = as_("alice")
    path = "/api/userdata/workflows%2Fmine.json"
    assert (await r0.client.post(path, data=WORKFLOW, headers=alice)).status == 200
    assert (
        await r0.client.post("/api/settings/Comfy.Theme", json="x", headers=alice)
    ).status == 200
    assert await (await r1.client.get(path, headers=alice)).read() == WORKFLOW
    for replica in (r0, r1):
        bob = as_("bob")
        assert (await replica.client.get(path, headers=bob)).status == 404
        listing = await replica.client.get("/api/userdata?dir=workflows", headers=bob)
        assert listing.status == 404
        assert await (await replica.client.get("/api/settings", headers=bob)).json() == {}
        for escape in ESCAPES:
            resp = await replica.client.get(f"/api/userdata/{escape}", headers=bob)
            assert resp.status == 403 and WORKFLOW not in await resp.read()
        v2 = await replica.client.get("/api/v2/userdata?path=..%2Falice", headers=bob)
        assert v2.status == 403
        overwrite = await replica.client.post(
            f"/api/userdata/{ESCAPES[0]}", data=b"bob was here", headers=bob
        )
        assert overwrite.status == 403
    assert await (await r1.client.get(path, headers=alice)).read() == WORKFLOW


async def test_with_redis_unreachable_user_data_is_a_clear_503(
    make_replicas: ReplicaFactory, own_redis: RedisServer
) -> None:
    (r0,) = await make_replicas(1, backends=1, redis_at=own_redis.url)
    assert (await r0.client.post("/api/settings/Comfy.Theme", json="dark")).status == 200
    own_redis.stop()
    for resp in (
        await r0.client.get("/api/settings"),
        await r0.client.post("/api/settings/Comfy.Theme", json="light"),
        await r0.client.post("/api/userdata/workflows%2Fx.json", data=b"{}"),
        await r0.client.get("/api/userdata?dir=workflows"),
        await r0.client.get("/users"),
    ):
        await assert_store_unavailable(resp)
