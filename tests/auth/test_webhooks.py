"""Webhooks: signed, retried against a failing receiver, allow-listed."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs
from support import Pool, PoolFactory, colored

from balancer.config.delivery_settings import WebhookSettings
from balancer.webhooks.setup import WEBHOOKS

SECRET = "hook-secret"


async def receiver(fail_first: int = 0) -> tuple[TestServer, list[tuple[bytes, str]]]:
    seen: list[tuple[bytes, str]] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return web.Response(status=500)
        seen.append((await request.read(), request.headers["X-Balancer-Signature"]))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, seen


async def hooked_pool(make_pool: PoolFactory, **webhooks: Any) -> tuple[Pool, list[float]]:
    settings = WebhookSettings(secret=SECRET, allow=("127.0.0.1",), **webhooks)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    pool = await make_pool(1, settings_overrides={"webhooks": settings}, sleep=sleep)
    return pool, sleeps


async def test_completion_is_posted_and_signed(make_pool: PoolFactory) -> None:
    server, seen = await receiver()
    pool, _ = await hooked_pool(make_pool)
    url = str(server.make_url("/hook"))
    job = await pool.submit(colored(5), extra_data={"webhook": url})
    await pool.settle([job["prompt_id"]])
    await pool.client.app[WEBHOOKS].drain()  # type: ignore[index]
    ((body, signature),) = seen
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, f"sha256={expected}")
    event = json.loads(body)
    assert event["prompt_id"] == job["prompt_id"] and event["status"] == "completed"
    (output,) = event["outputs"]
    assert output["url"].startswith("http://127.0.0.1:") and "/view?" in output["url"]
    assert event["error"] is None and event["timings"]["run_s"] is not None
    await server.close()


async def test_a_failing_receiver_is_retried_with_backoff(make_pool: PoolFactory) -> None:
    server, seen = await receiver(fail_first=2)
    pool, sleeps = await hooked_pool(make_pool, url=str(server.make_url("/hook")))
    job = await pool.submit(colored(6))  # the default URL from the config
    await pool.settle([job["prompt_id"]])
    await pool.client.app[WEBHOOKS].drain()  # type: ignore[index]
    assert len(seen) == 1 and sleeps == [0.5, 1.0]
    await server.close()


async def test_gives_up_after_max_attempts(make_pool: PoolFactory) -> None:
    server, seen = await receiver(fail_first=99)
    pool, sleeps = await hooked_pool(make_pool, url=str(server.make_url("/hook")), max_attempts=3)
    with capture_logs() as logs:
        job = await pool.submit(colored(7))
        await pool.settle([job["prompt_id"]])
        await pool.client.app[WEBHOOKS].drain()  # type: ignore[index]
    assert seen == [] and sleeps == [0.5, 1.0]
    assert ("webhook_gave_up", job["prompt_id"]) in [(e["event"], e.get("prompt_id")) for e in logs]
    store = pool.balancer.store
    assert await store.claim_owed("anyone", 1e12, 1e12, mine=True) == [], "given up: owed no more"
    await server.close()


async def test_a_host_not_on_the_allow_list_is_refused(make_pool: PoolFactory) -> None:
    pool, _ = await hooked_pool(make_pool)
    for url in ("http://10.0.0.1/hook", "http://localhost:1/x", "ftp://127.0.0.1/x", 5):
        body = {"prompt": colored(1), "extra_data": {"webhook": url}}
        resp = await pool.client.post("/prompt", json=body)
        assert resp.status == 400, url
        assert (await resp.json())["error"]["type"] == "invalid_webhook"
