"""A tenant reaches only its own stored outputs: no URL, object or deletion
of another tenant's job through any route; webhooks carry the bucket URL."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from auth.auth_helpers import as_, keyed_pool, submit_as
from auth.test_webhooks import SECRET, receiver
from support import PoolFactory, colored

from balancer.bench.s3server import S3Server
from balancer.config.delivery_settings import WebhookSettings
from balancer.webhooks.setup import WEBHOOKS

from .conftest import sink_settings
from .test_sink import first_image


async def test_tenant_b_cannot_reach_tenant_a_outputs(make_pool: PoolFactory, s3: S3Server) -> None:
    pool = await keyed_pool(make_pool, 1, settings_overrides={"outputs": sink_settings(s3)})
    alice = await submit_as(pool, "alice", colored(4))
    await pool.done(alice, timeout=30)
    mine = await (await pool.client.get(f"/history/{alice}", headers=as_("alice"))).json()
    image = first_image(mine[alice])
    assert image["key"].startswith(f"outputs/alice/{alice}/")
    query = {k: image[k] for k in ("filename", "subfolder", "type")}

    assert await (await pool.client.get(f"/history/{alice}", headers=as_("bob"))).json() == {}
    every = await (await pool.client.get("/history", headers=as_("bob"))).text()
    assert alice not in every and image["key"] not in every
    job = await pool.client.get(f"/api/jobs/{alice}", headers=as_("bob"))
    assert job.status == 404 and image["key"] not in await job.text()
    view = await pool.client.get("/view", params=query, headers=as_("bob"))
    assert view.status == 404
    delete = await pool.client.delete(f"/api/jobs/{alice}/outputs", headers=as_("bob"))
    assert delete.status == 404
    assert s3.object_path(image["key"]).exists()

    view = await pool.client.get("/view", params=query, headers=as_("alice"))
    assert view.status == 200 and await view.read() == s3.object_path(image["key"]).read_bytes()
    delete = await pool.client.delete(f"/api/jobs/{alice}/outputs", headers=as_("alice"))
    assert delete.status == 200 and (await delete.json())["deleted"] == 1
    assert not s3.object_path(image["key"]).exists()
    after = await (await pool.client.get(f"/history/{alice}", headers=as_("alice"))).json()
    gone = first_image(after[alice])
    assert gone["stored"] is False and gone["deleted"] is True and "url" not in gone


async def test_the_webhook_carries_the_signed_url_and_key(
    make_pool: PoolFactory, s3: S3Server, tmp_path: Path
) -> None:
    server, seen = await receiver()
    hooks = WebhookSettings(secret=SECRET, allow=("127.0.0.1",))
    overrides = {"outputs": sink_settings(s3), "webhooks": hooks}
    pool = await make_pool(1, settings_overrides=overrides)
    url = str(server.make_url("/hook"))
    prompt_id = (await pool.submit(colored(5), extra_data={"webhook": url}))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    await pool.client.app[WEBHOOKS].drain()  # type: ignore[index]
    ((body, _),) = seen
    (output,) = json.loads(body)["outputs"]
    assert output["key"] == f"outputs/@anonymous/{prompt_id}/3/{output['filename']}"
    assert output["stored"] is True and output["url"].startswith(s3.endpoint)
    written = (tmp_path / "gpu0" / "output" / output["filename"]).read_bytes()
    async with aiohttp.ClientSession() as plain, plain.get(output["url"]) as resp:
        assert await resp.read() == written
    await server.close()
