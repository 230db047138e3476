"""POST /prompt (dispatch) and GET /prompt (pool-wide queue_remaining)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from balancer.auth.submission import accepted, admit, quota_of
from balancer.errors import error_response
from balancer.jobs.send_results import Refused
from balancer.jobs.submission import Submitted
from balancer.proxy.aggregate_routes import healthy_json
from balancer.proxy.context import ctx, read_json_object


async def post_prompt(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    if "prompt" not in body:
        return error_response(400, "no_prompt", "No prompt provided", "No prompt provided")
    if not isinstance(body["prompt"], dict):
        return error_response(400, "invalid_prompt", "Prompt must be a JSON object")
    refused = admit(request, body)  # tenant files, webhook
    if refused is not None:
        return refused
    result = await ctx(request).submitter.submit(body, quota_of(request))
    if isinstance(result, Submitted):
        await accepted(request, body, result.prompt_id, result.fresh)
        return web.Response(body=result.body, content_type="application/json")
    if isinstance(result, Refused):  # the backend's own answer, as it gave it
        return web.Response(
            status=result.status, body=result.body, content_type=result.content_type
        )
    headers = {"Retry-After": str(result.retry_after)} if result.retry_after else {}
    return error_response(result.status, result.type, result.message, result.details, headers)


def queue_remaining(data: Any) -> int:
    try:
        value = data["exec_info"]["queue_remaining"]
    except (KeyError, TypeError):
        return 0
    return value if isinstance(value, int) else 0


async def get_prompt(request: web.Request) -> web.StreamResponse:
    """Pool-wide queue_remaining: every backend's plus the balancer's waiting jobs."""
    b = ctx(request)
    answers = await healthy_json(b, "/prompt")
    total = await b.waiting.read() + sum(queue_remaining(data) for _, data in answers)
    return web.json_response({"exec_info": {"queue_remaining": total}})
