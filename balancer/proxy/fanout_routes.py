"""Writes that go to several backends: queue/history clear and delete, /free."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiohttp import web

from balancer.auth.tenancy import scoped_body
from balancer.backends.state import Backend
from balancer.errors import error_response
from balancer.proxy.context import ctx, read_json_object, upstream_failed
from balancer.state import Balancer
from balancer.upstream import UpstreamError, UpstreamReply


async def by_owner(b: Balancer, ids: list[Any]) -> dict[str, list[str]]:
    """Split prompt_ids per owning backend; unknown ids are dropped."""
    groups: dict[str, list[str]] = defaultdict(list)
    for prompt_id in ids:
        owner = await b.owner_of(str(prompt_id))
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


async def scoped_request(request: web.Request, b: Balancer, path: str) -> Any:
    """The clear/delete body, narrowed to a client key's own ids, with
    `delete` a list; or the 400."""
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    body = await scoped_body(request, b, path, body) or body
    body = {**body, "delete": body.get("delete", [])}
    if not isinstance(body["delete"], list):
        return error_response(400, "invalid_request", "delete must be a list of prompt ids")
    return body


async def post_queue(request: web.Request) -> web.StreamResponse:
    """`{"delete": [ids]}` and `{"clear": true}`: the balancer's jobs are
    removed by the jobs lifecycle (answered once each removal is settled, so
    a removed job never starts afterwards); ids it does not know go to their
    pinned owner, and a clear also reaches every healthy backend."""
    b = ctx(request)
    body = await scoped_request(request, b, "/queue")
    if isinstance(body, web.Response):
        return body
    ids = [str(i) for i in body["delete"]]
    if body.get("clear"):
        await b.canceller.clear(None)
    known = [i for i in ids if await b.store.get_job(i) is not None]
    await b.canceller.remove(known)
    replies = []
    for name, foreign in (await by_owner(b, [i for i in ids if i not in known])).items():
        backend = b.registry.get(name)
        if backend is not None:
            replies += await b.each([backend], "POST", "/queue", {"delete": foreign})
    return first_failure(replies) or web.Response(status=200)


async def post_history(request: web.Request) -> web.StreamResponse:
    """`{"clear": true}` goes to every healthy backend; `{"delete": [ids]}`
    to each id's owner only, split per owner; kept history follows both."""
    b = ctx(request)
    body = await scoped_request(request, b, "/history")
    if isinstance(body, web.Response):
        return body
    delete = body["delete"]
    # An end a client was told of that is still being recorded is recorded
    # first: else its entry, gone from its backend, would look lost (run
    # again), or, already read, would come back after the delete.
    told = None if body.get("clear") else {str(i) for i in delete}
    await b.follower.ends.recorded(told, b.settings.probe.timeout)
    replies = []
    if body.get("clear"):
        replies += await b.each_healthy("POST", "/history", {"clear": True})
    await forget_kept_history(b, delete, bool(body.get("clear")))
    for name, ids in (await by_owner(b, delete)).items():
        backend = b.registry.get(name)
        if backend is not None:
            replies += await b.each([backend], "POST", "/history", {"delete": ids})
    return first_failure(replies) or web.Response(status=200)


async def forget_kept_history(b: Balancer, delete: list[Any], clear: bool) -> None:
    """History the balancer keeps follows the client's deletes and clears."""
    for prompt_id in list(await b.store.histories()) if clear else delete:
        await b.store.remove_history(str(prompt_id))


async def post_free(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    body = await read_json_object(request, empty_ok=True)
    if isinstance(body, web.Response):
        return body
    replies = await b.each_healthy("POST", "/free", body)
    if isinstance(body, dict) and (body.get("unload_models") or body.get("free_memory")):
        for backend, reply in replies:
            if isinstance(reply, UpstreamReply) and reply.status == 200:
                b.residency.freed(backend.name)
    return first_failure(replies) or web.Response(status=200)
