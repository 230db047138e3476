"""The admin API: list, add, remove, drain, undrain; token and loopback rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp.test_utils import make_mocked_request
from support import PoolFactory, colored

from balancer.config.access_settings import AdminSettings
from balancer.ops.admin import is_loopback, refusal


class Peer:
    """A transport whose peer is any address we like."""

    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.host, 40000) if name == "peername" else default


def set_token(pool: Any, token: str | None) -> None:
    b = pool.balancer
    b.settings = replace(b.settings, admin=AdminSettings(token=token))


async def test_list_add_drain_undrain_remove(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    listed = await (await pool.client.get("/balancer/backends")).json()
    assert [row["name"] for row in listed["backends"]] == ["gpu0", "gpu1"]

    drained = await pool.client.post("/balancer/backends/gpu0/drain")
    assert (await drained.json())["drain_reasons"] == ["manual"]
    owners = {await pool.owner((await pool.submit(colored(i)))["prompt_id"]) for i in range(2)}
    assert owners == {"gpu1"}
    undrained = await pool.client.post("/balancer/backends/gpu0/undrain")
    assert (await undrained.json())["state"] == "up"

    url = str(pool.servers["gpu1"].make_url("")).rstrip("/")
    added = await pool.client.post("/balancer/backends", json={"name": "again", "url": url})
    assert added.status == 201, await added.text()
    await pool.channels_up(["again"])
    await pool.probe()
    assert pool.balancer.registry.get("again").healthy  # type: ignore[union-attr]

    await pool.wait_idle()
    await pool.probe()
    removed = await pool.client.delete("/balancer/backends/again")
    assert removed.status == 202
    assert pool.balancer.registry.get("again") is None  # idle: gone at once
    assert (await pool.client.delete("/balancer/backends/nope")).status == 404
    assert (await pool.client.post("/balancer/backends/nope/drain")).status == 404


async def test_bad_additions_are_refused_with_every_error(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    bad = await pool.client.post("/balancer/backends", json={"url": "ftp://x", "primary": 3})
    assert bad.status == 400
    details = (await bad.json())["error"]["details"]
    assert "url" in details and "primary" in details and "name" in details
    url = str(pool.servers["gpu0"].make_url("")).rstrip("/")
    dup = await pool.client.post("/balancer/backends", json={"name": "gpu0", "url": url})
    assert dup.status == 409


async def test_a_removed_busy_backend_stays_until_idle(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    pool.emulators["gpu1"].pause()
    await pool.client.post("/balancer/backends/gpu0/drain")
    job = (await pool.submit(colored(7)))["prompt_id"]
    assert await pool.owner(job) == "gpu1"
    await pool.probe()
    assert (await pool.client.delete("/balancer/backends/gpu1")).status == 202
    status = await (await pool.client.get("/balancer/status")).json()
    assert [r["state"] for r in status["backends"] if r["name"] == "gpu1"] == ["removed"]
    assert (await pool.client.get(f"/history/{job}")).status == 200  # still pinned there
    pool.emulators["gpu1"].resume()
    await pool.wait_idle()
    await pool.probe()
    assert pool.balancer.registry.get("gpu1") is None


async def test_a_token_is_required_when_set(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    set_token(pool, "s3cret")
    assert (await pool.client.get("/balancer/backends")).status == 401
    wrong = await pool.client.get("/balancer/backends", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    body = await wrong.json()
    assert body["error"]["type"] == "unauthorized" and body["node_errors"] == {}
    ok = await pool.client.get("/balancer/backends", headers={"Authorization": "Bearer s3cret"})
    assert ok.status == 200


async def test_without_a_token_only_loopback_peers_are_served(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    app = pool.client.app
    assert app is not None
    remote = make_mocked_request("GET", "/balancer/backends", app=app, transport=Peer("10.1.2.3"))
    refused = refusal(remote)
    assert refused is not None and refused.status == 403
    local = make_mocked_request("GET", "/balancer/backends", app=app, transport=Peer("::1"))
    assert refusal(local) is None
    set_token(pool, "t")
    authed = make_mocked_request(
        "GET",
        "/balancer/backends",
        app=app,
        transport=Peer("10.1.2.3"),
        headers={"Authorization": "Bearer t"},
    )
    assert refusal(authed) is None
    assert not is_loopback("192.168.1.1") and is_loopback("127.0.0.1")
    assert not is_loopback(None) and not is_loopback("not-an-ip")
