"""Writes that go to several backends: queue/history clear and delete, /free."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiohttp import web

from balancer.auth.tenancy import scoped_body
from balancer.backends.state import Backend
from balancer.errors import error_response
from balancer.proxy.context import Balancer, ctx, read_json_object, upstream_failed
from balancer.upstream import UpstreamError, UpstreamReply


def by_owner(b: Balancer, ids: list[Any]) -> dict[str, list[str]]:
    """Split prompt_ids per owning backend; unknown ids are dropped."""
    groups: dict[str, list[str]] = defaultdict(list)
    for prompt_id in ids:
        owner = b.owner_of(str(prompt_id))
        if owner is not None:
            groups[owner.name].append(str(prompt_id))
    return groups


def first_failure(
    replies: list[tuple[Backend, UpstreamReply | UpstreamError]],
) -> web.Response | None:
    for backend, reply in replies:
        if isinstance(reply, UpstreamError):
            return upstream_failed(backend, reply)
    return None


async def clear_or_delete(request: web.Request, path: str) -> web.StreamResponse:
    """`{"clear": true}` goes to every healthy backend; `{"delete": [ids]}`
    to each id's owner only, split per owner."""
    b = ctx(request)
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    body = scoped_body(request, b, path, body) or body  # a client key: its own ids only
    delete = body.get("delete", [])
    if not isinstance(delete, list):
        return error_response(400, "invalid_request", "delete must be a list of prompt ids")
    replies = []
    if body.get("clear"):
        replies += await b.each_healthy("POST", path, {"clear": True})
    if path == "/queue":
        forget_waiting(b, delete, bool(body.get("clear")))
    if path == "/history":
        forget_kept_history(b, delete, bool(body.get("clear")))
    for name, ids in by_owner(b, delete).items():
        backend = b.registry.get(name)
        if backend is not None:
            replies += await b.each([backend], "POST", path, {"delete": ids})
    return first_failure(replies) or web.Response(status=200)


def forget_waiting(b: Balancer, delete: list[Any], clear: bool) -> None:
    """Jobs waiting in the balancer follow the client's queue deletes and clears."""
    for prompt_id in [j.prompt_id for j in b.binder.queue] if clear else delete:
        b.binder.remove(str(prompt_id))
    b.relay.refresh_status()


def forget_kept_history(b: Balancer, delete: list[Any], clear: bool) -> None:
    """History the balancer keeps follows the client's deletes and clears."""
    for prompt_id in list(b.store.histories()) if clear else delete:
        b.store.remove_history(str(prompt_id))


async def post_queue(request: web.Request) -> web.StreamResponse:
    return await clear_or_delete(request, "/queue")


async def post_history(request: web.Request) -> web.StreamResponse:
    return await clear_or_delete(request, "/history")


async def post_free(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    body = await read_json_object(request, empty_ok=True)
    if isinstance(body, web.Response):
        return body
    return first_failure(await b.each_healthy("POST", "/free", body)) or web.Response(status=200)
