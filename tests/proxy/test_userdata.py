"""The balancer keeps user data itself: settings and saved workflows answered
from its data dir with ComfyUI's semantics, whichever backend is primary or up."""

from __future__ import annotations

from support import PoolFactory


async def test_saved_workflow_survives_the_primary_going_down(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, primary="gpu0")
    client = pool.client
    body = b'{"nodes": []}'
    saved = await client.post("/api/userdata/workflows%2Fmine.json?overwrite=false", data=body)
    assert saved.status == 200 and await saved.json() == "workflows/mine.json"
    again = await client.post("/api/userdata/workflows%2Fmine.json?overwrite=false", data=body)
    assert again.status == 409
    assert (await client.post("/api/settings/Comfy.Theme", json="dark")).status == 200

    await pool.servers["gpu0"].close()
    for _ in range(pool.balancer.settings.probe.unhealthy_after):
        await pool.probe()
    assert [b.name for b in pool.balancer.registry.healthy()] == ["gpu1"]

    listing = await client.get("/api/userdata?dir=workflows&recurse=true&full_info=true")
    assert [f["path"] for f in await listing.json()] == ["mine.json"]
    assert await (await client.get("/api/userdata/workflows%2Fmine.json")).read() == body
    assert await (await client.get("/api/settings/Comfy.Theme")).json() == "dark"
    assert await (await client.get("/users")).json() == {"storage": "server", "migrated": True}
    moved = await client.post("/api/userdata/workflows%2Fmine.json/move/workflows%2Fb.json")
    assert await moved.json() == "workflows/b.json"
    v2 = await (await client.get("/api/v2/userdata?path=workflows")).json()
    assert [(e["name"], e["type"]) for e in v2] == [("b.json", "file")]
    assert (await client.delete("/api/userdata/workflows%2Fb.json")).status == 204
    assert (await client.get("/api/userdata/workflows%2Fb.json")).status == 404
    assert (await client.get("/api/userdata/..%2F..%2Fetc%2Fpasswd")).status == 403
    assert (await client.get("/api/userdata")).status == 400
    # the backends never saw any of it
    for emulator in pool.emulators.values():
        assert not (emulator.dirs.base / "user" / "default" / "workflows").exists()
