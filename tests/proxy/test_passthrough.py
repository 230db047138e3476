"""Pass-through: headers, encoded paths, streaming, ranges, failures."""

from __future__ import annotations

import json
from pathlib import Path

from echo_backend import BIG, echo_backend
from support import PoolFactory


async def test_encoded_slash_and_query_reach_the_backend_as_sent(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    app, _ = echo_backend(tmp_path)
    pool = await make_pool(0, extra_apps={"echo": app})
    resp = await pool.client.get("/api/my_custom_node/files/a%2Fb%20c.json?overwrite=true")
    assert (await resp.json())[
        "raw_path"
    ] == "/api/my_custom_node/files/a%2Fb%20c.json?overwrite=true"


async def test_origin_host_and_forwarding_headers_are_rewritten(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    app, _ = echo_backend(tmp_path)
    pool = await make_pool(0, extra_apps={"echo": app})
    backend_url = pool.balancer.registry.get("echo").url  # type: ignore[union-attr]
    resp = await pool.client.post(
        "/api/my_custom_node/settings",
        data=b'"dark"',
        headers={
            "Origin": "https://balancer.example",
            "Host": "balancer.example",  # same origin: a cross-origin POST is refused
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "drop me",
            "Comfy-User": "alice",
        },
    )
    echoed = (await resp.json())["headers"]
    assert echoed["Origin"] == backend_url
    assert echoed["Host"] == backend_url.removeprefix("http://")
    assert echoed["X-Forwarded-For"] == "127.0.0.1"
    assert echoed["X-Forwarded-Proto"] == "http"
    assert echoed["Comfy-User"] == "alice"
    assert "X-Hop" not in echoed
    assert resp.headers["X-Backend"] == "echo"
    assert "Keep-Alive" not in resp.headers


async def test_large_bodies_stream_both_ways(make_pool: PoolFactory, tmp_path: Path) -> None:
    app, _seen = echo_backend(tmp_path)
    pool = await make_pool(0, extra_apps={"echo": app})
    resp = await pool.client.get("/big")
    assert len(await resp.read()) == BIG
    resp = await pool.client.post("/upload/anything", data=b"u" * BIG)
    assert (await resp.json())["body_len"] == BIG


async def test_range_and_conditional_requests_pass_through(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    app, _ = echo_backend(tmp_path)
    pool = await make_pool(0, extra_apps={"echo": app})
    resp = await pool.client.get("/clip.bin", headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    assert await resp.read() == bytes(range(10, 20))
    etag = resp.headers["ETag"]
    again = await pool.client.get("/clip.bin", headers={"If-None-Match": etag})
    assert again.status == 304


async def test_backend_failing_mid_request_is_502_in_comfy_shape(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    app, _ = echo_backend(tmp_path)
    pool = await make_pool(0, extra_apps={"echo": app})
    resp = await pool.client.get("/die")
    assert resp.status == 502
    body = await resp.json()
    assert body["error"]["type"] == "bad_gateway" and body["node_errors"] == {}


async def test_pass_through_goes_to_the_primary_then_first_healthy(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    first, seen_first = echo_backend(tmp_path / "a")
    second, seen_second = echo_backend(tmp_path / "b")
    pool = await make_pool(0, extra_apps={"a": first, "b": second}, primary="b")
    seen_first.clear()  # the balancer's own catalogue reads at the first probe
    seen_second.clear()
    await pool.client.get("/extensions")
    assert [r["raw_path"] for r in seen_second] == ["/extensions"] and seen_first == []
    await pool.servers["b"].close()
    for _ in range(3):
        await pool.probe()
    await pool.client.get("/api/extensions")
    assert [r["raw_path"] for r in seen_first] == ["/api/extensions"]


async def test_fan_out_writes_reach_every_backend(make_pool: PoolFactory, tmp_path: Path) -> None:
    first, seen_first = echo_backend(tmp_path / "a")
    second, seen_second = echo_backend(tmp_path / "b")
    pool = await make_pool(0, extra_apps={"a": first, "b": second})
    seen_first.clear()  # the balancer's own catalogue reads at the first probe
    seen_second.clear()
    assert (await pool.client.post("/free", json={"unload_models": True})).status == 200
    assert (await pool.client.post("/api/queue", json={"clear": True})).status == 200
    for seen in (seen_first, seen_second):
        assert [(r["raw_path"], json.loads(r["body"])) for r in seen] == [
            ("/free", {"unload_models": True}),
            ("/queue", {"clear": True}),
        ]
