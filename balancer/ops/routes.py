"""GET /balancer (HTML), /balancer/status (JSON) and /metrics."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from aiohttp import web

from balancer.auth.principal import principal_of
from balancer.ops.context import OPS
from balancer.ops.metrics import CONTENT_TYPE
from balancer.ops.status import Holdings, status_document
from balancer.outputs.setup import status as outputs_status
from balancer.proxy.context import ctx
from balancer.replicas.coordination import alone
from balancer.replicas.identity import identify
from balancer.state import Balancer

PAGE = files("balancer.ops").joinpath("status.html")


async def get_page(request: web.Request) -> web.StreamResponse:
    return web.Response(
        text=PAGE.read_text(encoding="utf-8"),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


async def get_status(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    holdings = Holdings(b.catalogues, b.residency)
    doc = await status_document(
        list(b.registry), b.clock(), request.app[OPS].tally, b.follower, holdings
    )
    for row in doc["backends"]:
        row["running_prompt_id"] = await visible_prompt(request, row["running_prompt_id"])
    doc["pool"]["waiting"] = await b.waiting.read()
    doc["outputs"] = outputs_status(request)
    doc.update(await replica_fields(b))
    return web.json_response(doc, headers={"Cache-Control": "no-store"})


async def replica_fields(b: Balancer) -> dict[str, Any]:
    """Which replica answers, and every replica (just itself when alone)."""
    if b.replicas is None:
        return alone(identify(b.settings.replicas, b.settings.listen))
    return await b.replicas.status()


async def visible_prompt(request: web.Request, prompt_id: str | None) -> str | None:
    """With API keys, a running prompt_id shows only to its owner and admins:
    the status page may be public (`auth.public_status`), its jobs are not."""
    b = ctx(request)
    if prompt_id is None or not b.settings.auth.keys:
        return prompt_id
    caller = principal_of(request)
    pin = await b.store.get_pin(prompt_id)
    owner = pin.tenant if pin else None
    mine = caller.scope == "client" and owner is not None and owner == caller.name
    return prompt_id if caller.scope == "admin" or mine else None


async def get_metrics(request: web.Request) -> web.StreamResponse:
    body = await request.app[OPS].metrics.scrape(ctx(request).store.count_owed)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_status_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/balancer", get_page)
    router.add_get("/balancer/", get_page)
    router.add_get("/balancer/status", get_status)
    router.add_get("/metrics", get_metrics)
