"""Tenants: a client key sees and touches only its own jobs, files and events."""

from __future__ import annotations

import asyncio

from support import HANG_BOUND, PoolFactory, colored
from upload_support import form, i2i, png

from .auth_helpers import as_, keyed_pool, submit_as


async def test_another_tenants_jobs_look_unknown(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 2)
    mine = await submit_as(pool, "alice", colored(1))
    await pool.settle([mine])
    get = pool.client.get
    entry = await (await get(f"/history/{mine}", headers=as_("alice"))).json()
    assert mine in entry
    assert await (await get(f"/history/{mine}", headers=as_("bob"))).json() == {}
    assert mine not in await (await get("/history", headers=as_("bob"))).json()
    assert mine in await (await get("/history", headers=as_("alice"))).json()
    assert mine in await (await get("/history", headers=as_("root"))).json()
    assert (await get(f"/api/jobs/{mine}", headers=as_("bob"))).status == 404
    (image,) = entry[mine]["outputs"]["3"]["images"]
    assert (await get("/view", params=image, headers=as_("alice"))).status == 200
    assert (await get("/view", params=image, headers=as_("bob"))).status == 404
    assert (await get("/view", params=image, headers=as_("root"))).status == 200
    cancel = await pool.client.post(f"/api/jobs/{mine}/cancel", headers=as_("bob"))
    assert await cancel.json() == {"cancelled": False}
    await pool.client.post("/history", json={"clear": True}, headers=as_("bob"))
    assert mine in await (await get("/history", headers=as_("alice"))).json()


async def test_queue_and_interrupt_are_per_tenant(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 2)
    for emulator in pool.emulators.values():
        emulator.pause()
    alice = await submit_as(pool, "alice", colored(1))
    bob = await submit_as(pool, "bob", colored(2))
    queue = await (await pool.client.get("/queue", headers=as_("bob"))).json()
    ids = [i[1] for i in queue["queue_running"] + queue["queue_pending"]]
    assert ids == [bob]
    # bob's bare interrupt and an interrupt of alice's id leave alice's job alone
    await pool.client.post("/interrupt", json={"prompt_id": alice}, headers=as_("bob"))
    await pool.client.post("/interrupt", headers=as_("bob"))
    await pool.client.post("/queue", json={"delete": [alice]}, headers=as_("bob"))
    for emulator in pool.emulators.values():
        emulator.resume()
    await pool.settle([alice, bob])
    statuses = {}
    for pid, who in ((alice, "alice"), (bob, "bob")):
        entry = await (await pool.client.get(f"/history/{pid}", headers=as_(who))).json()
        statuses[who] = entry[pid]["status"]["status_str"]
    assert statuses == {"alice": "success", "bob": "error"}


async def test_uploads_belong_to_their_tenant(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 2)
    data = png((10, 20, 30))
    resp = await pool.client.post("/upload/image", data=form(data, "in.png"), headers=as_("alice"))
    answer = await resp.json()
    assert answer["subfolder"] == "_t_alice"
    params = {"filename": "in.png", "subfolder": answer["subfolder"], "type": "input"}
    assert (await pool.client.get("/view", params=params, headers=as_("alice"))).status == 200
    assert (await pool.client.get("/view", params=params, headers=as_("bob"))).status == 404
    ref = f"{answer['subfolder']}/in.png"
    bad = await pool.client.post("/prompt", json={"prompt": i2i(ref)}, headers=as_("bob"))
    assert bad.status == 400
    good = await submit_as(pool, "alice", i2i(ref))
    await pool.settle([good])


async def test_socket_events_reach_only_their_tenant(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    theirs = await pool.client.ws_connect("/ws", params={"clientId": "c1", **tok("bob")})
    mine = await pool.client.ws_connect("/ws", params={"clientId": "c1", **tok("alice")})
    done = pool.watch("completed", "p-alice")
    await submit_as(pool, "alice", colored(3), client_id="c1", prompt_id="p-alice")
    await asyncio.wait_for(done.wait(), HANG_BOUND)
    await pool.settle(["p-alice"])
    await asyncio.wait_for(until_seen(mine, "p-alice"), HANG_BOUND)
    assert "p-alice" not in await drain(theirs)


def tok(name: str) -> dict[str, str]:
    return {"token": as_(name)["X-API-Key"]}


async def until_seen(ws: object, text: str) -> None:
    """Read frames until one holds `text` (sent before the job ended, but a
    loaded machine may deliver it after a pause longer than drain's)."""
    while text not in str((await ws.receive()).data):  # type: ignore[attr-defined]
        pass


async def drain(ws: object) -> str:
    """Everything a socket holds now, as text (a short read per frame)."""
    seen = []
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), 0.2)  # type: ignore[attr-defined]
        except TimeoutError:
            return "".join(seen)
        seen.append(str(msg.data))


async def test_public_status_shows_a_running_prompt_id_only_to_its_owner_and_admins(
    make_pool: PoolFactory,
) -> None:
    pool = await keyed_pool(make_pool, 1)
    pool.emulators["gpu0"].pause()
    running = "alice-running-job"
    started = pool.watch("running", running)
    await submit_as(pool, "alice", colored(1), prompt_id=running)
    await asyncio.wait_for(started.wait(), HANG_BOUND)

    async def shown(headers: dict[str, str]) -> str | None:
        resp = await pool.client.get("/balancer/status", headers=headers)
        assert resp.status == 200
        value: str | None = (await resp.json())["backends"][0]["running_prompt_id"]
        return value

    assert await shown(as_("alice")) == running
    assert await shown(as_("root")) == running
    assert await shown(as_("bob")) is None
    assert await shown({}) is None  # public, anonymous
    pool.emulators["gpu0"].resume()
