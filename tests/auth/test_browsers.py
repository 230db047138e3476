"""CORS from `cors.origins`, and the cross-origin refusal without it."""

from __future__ import annotations

from support import PoolFactory, colored

from balancer.config.access_settings import CorsSettings

SITE = "https://app.example"


async def test_cross_origin_state_change_is_refused(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    body = {"prompt": colored(1)}
    refused = await pool.client.post("/prompt", json=body, headers={"Origin": SITE})
    assert refused.status == 403
    reads = await pool.client.get("/queue", headers={"Origin": SITE})
    assert reads.status == 200
    host = str(pool.client.make_url("")).rstrip("/")
    same = await pool.client.post("/prompt", json=body, headers={"Origin": host})
    assert same.status == 200
    ws = await pool.client.get(
        "/ws",
        headers={
            "Origin": SITE,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert ws.status == 403


async def test_cors_preflight_and_headers_for_allowed_origins(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, settings_overrides={"cors": CorsSettings(origins=(SITE,))})
    pre = await pool.client.options(
        "/prompt",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, X-API-Key",
        },
    )
    assert pre.status == 200
    assert pre.headers["Access-Control-Allow-Origin"] == SITE
    post = await pool.client.post("/prompt", json={"prompt": colored(1)}, headers={"Origin": SITE})
    assert post.status == 200
    assert post.headers["Access-Control-Allow-Origin"] == SITE
    other = await pool.client.post(
        "/prompt", json={"prompt": colored(2)}, headers={"Origin": "https://evil.example"}
    )
    assert other.status == 403
