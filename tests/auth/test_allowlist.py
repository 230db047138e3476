"""Access control is an allow-list of matched routes; preflights are the
balancer's to answer; no credential reaches a backend in any form (issue 12,
defects 3 and 7)."""

from __future__ import annotations

import asyncio
import json

import pytest
from support import Pool, PoolFactory, colored

from balancer.config.access_settings import CorsSettings

from .auth_helpers import SECRETS, keyed_pool, submit_as
from .recording import Recorder

SITE = "https://app.example"


async def raw(pool: Pool, request_line: str, *headers: str, body: str = "") -> tuple[int, bytes]:
    """One request sent byte for byte (`curl --path-as-is`, repeated headers)."""
    server = pool.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    length = [f"Content-Length: {len(body)}"] if body else []
    lines = [request_line, "Host: localhost", *headers, *length, "Connection: close", "", body]
    writer.write("\r\n".join(lines).encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "path",
    [
        "/balancer/backends/../../history",
        "/balancer/backends/%2e%2e/%2e%2e/history",
        "/balancer/backends/..%2F..%2Fhistory",
        "/balancer/health/../../queue",
        "/balancer/status/../../history",
        "/metrics/../history",
    ],
)
async def test_dot_segments_never_skip_the_key_check(make_pool: PoolFactory, path: str) -> None:
    recorder = Recorder()
    pool = await keyed_pool(make_pool, 1, middlewares=(recorder.middleware,))
    await submit_as(pool, "alice", colored(1), prompt_id="alice-job")
    await pool.settle(["alice-job"])
    before = len(recorder.seen)
    status, body = await raw(pool, f"GET {path} HTTP/1.1")
    assert status == 401
    assert b"alice-job" not in body
    assert recorder.paths()[before:] == []  # nothing reached a backend


async def test_a_keyed_caller_cannot_reach_a_backends_own_routes_by_dot_segments(
    make_pool: PoolFactory,
) -> None:
    recorder = Recorder()
    pool = await keyed_pool(make_pool, 1, middlewares=(recorder.middleware,))
    await submit_as(pool, "alice", colored(1), prompt_id="alice-job")
    await pool.settle(["alice-job"])
    before = len(recorder.seen)
    for path in ("/x/../history", "/x/%2E%2E/history", "/x%2F..%2Fhistory", "/./queue"):
        status, body = await raw(pool, f"GET {path} HTTP/1.1", "X-API-Key: bob-secret")
        assert status == 400, path
        assert b"alice-job" not in body
    assert recorder.paths()[before:] == []


@pytest.mark.parametrize("cors", [(), (SITE,)])
@pytest.mark.parametrize("path", ["/prompt", "/some/pass/through", "/api/userdata?dir=x"])
async def test_preflights_are_answered_by_the_balancer(
    make_pool: PoolFactory, cors: tuple[str, ...], path: str
) -> None:
    recorder = Recorder()
    overrides = {"cors": CorsSettings(origins=cors)}
    pool = await keyed_pool(
        make_pool, 1, middlewares=(recorder.middleware,), settings_overrides=overrides
    )
    before = len(recorder.seen)
    headers = {"Origin": SITE, "Access-Control-Request-Method": "POST"}
    resp = await pool.client.options(path, headers=headers)
    assert resp.status == (200 if cors else 403)
    assert resp.headers.get("Access-Control-Allow-Origin") == (SITE if cors else None)
    assert recorder.seen[before:] == []
    # a plain OPTIONS is a request like any other: it needs a key
    assert (await pool.client.options(path)).status == 401


@pytest.mark.parametrize("keys", [True, False])
async def test_no_credential_reaches_a_backend_in_any_form(
    make_pool: PoolFactory, keys: bool
) -> None:
    recorder = Recorder()
    if keys:
        pool = await keyed_pool(make_pool, 1, middlewares=(recorder.middleware,))
    else:
        pool = await make_pool(1, middlewares=(recorder.middleware,))
    bob = SECRETS["bob"]
    forms = [
        (f"X-API-Key: {bob}", f"X-API-Key: {SECRETS['alice']}"),
        (f"X-API-Key: {bob}", "x-api-key: second-one"),
        (f"Authorization: Bearer {bob}", "Authorization: Basic dXNlcjpwYXNz"),
        (f"Authorization: Bearer {bob}", f"Authorization: Bearer {SECRETS['root']}"),
        (f"X-API-Key: {bob}", "Proxy-Authorization: Basic dXNlcjpwYXNz"),
        (f"X-API-Key: {bob}", "Cookie: theme=dark; comfyui_balancer_session=v1.bob.9.x.y"),
        (f"X-API-Key: {bob}", "Cookie: theme=dark", "Cookie: comfyui_balancer_session=v1.x"),
    ]
    for headers in forms:
        for path in ("/some/pass/through", "/object_info", "/view?filename=x.png&type=temp"):
            status, _ = await raw(pool, f"GET {path} HTTP/1.1", *headers)
            assert status < 500
    for query in (f"token={bob}&token=x", f"token={bob}&x=1&token={bob}", f"%74oken={bob}"):
        status, _ = await raw(pool, f"GET /some/pass/through?{query} HTTP/1.1")
        assert status < 500
    body = json.dumps({"prompt": colored(2)})
    status, _ = await raw(
        pool,
        f"POST /prompt?token={bob} HTTP/1.1",
        f"Authorization: Bearer {bob}",
        "Authorization: Bearer second-one",
        "Content-Type: application/json",
        body=body,
    )
    assert status == 200
    assert len(recorder.seen) > 10
    assert recorder.credentials() == []
