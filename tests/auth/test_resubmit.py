"""An idempotent resubmit counts only for the tenant that owns the prompt_id
(issue 12, defect 4): another tenant can neither take over its webhook nor
learn which workflow the id belongs to."""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.test_utils import TestServer
from support import PoolFactory, colored

from balancer.config.delivery_settings import WebhookSettings
from balancer.webhooks.setup import WEBHOOKS

from .auth_helpers import as_, keyed_pool


async def hooks() -> tuple[TestServer, dict[str, list[str]]]:
    seen: dict[str, list[str]] = {"alice": [], "bob": []}

    async def hook(request: web.Request) -> web.Response:
        seen[request.match_info["who"]].append((await request.json())["prompt_id"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{who}", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, seen


async def test_another_tenant_cannot_hijack_or_probe_a_prompt_id(make_pool: PoolFactory) -> None:
    server, seen = await hooks()
    settings = WebhookSettings(secret="s", allow=("127.0.0.1",))
    pool = await keyed_pool(make_pool, 1, settings_overrides={"webhooks": settings})
    pool.emulators["gpu0"].pause()
    workflow = colored(3)

    async def post(who: str, prompt: dict[str, object]) -> tuple[int, bytes]:
        body = {
            "prompt": prompt,
            "prompt_id": "alice-hooked",
            "extra_data": {"webhook": str(server.make_url(f"/{who}"))},
        }
        resp = await pool.client.post("/prompt", json=body, headers=as_(who))
        return resp.status, await resp.read()

    status, first = await post("alice", workflow)
    assert status == 200
    same = await post("bob", workflow)
    other = await post("bob", colored(4))
    assert same[0] == other[0] == 400
    assert same[1] == other[1]  # one answer whatever the workflow: no oracle
    assert json.loads(same[1])["error"]["type"] == "invalid_prompt_id"
    assert await post("alice", workflow) == (200, first)  # her own retry still works
    pool.emulators["gpu0"].resume()
    await pool.settle(["alice-hooked"])
    await pool.client.app[WEBHOOKS].drain()  # type: ignore[index]
    assert seen == {"alice": ["alice-hooked"], "bob": []}
    await server.close()
