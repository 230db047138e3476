"""The gate in front of POST /prompt: files of other tenants, the webhook
allow-list and the key's rate; and noting whose job it is. The key's queue
cap is counted by the submitter, atomically with recording the job."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from balancer.auth.access import access_of
from balancer.auth.limits import retry_after
from balancer.auth.principal import principal_of
from balancer.auth.uploads import Foreign, foreign_file
from balancer.errors import error_body, error_response
from balancer.proxy.context import ctx
from balancer.webhooks.policy import refusal, requested_url
from balancer.webhooks.setup import WEBHOOKS


def admit(request: web.Request, body: dict[str, Any]) -> web.Response | None:
    """None if the prompt may be submitted, else the refusal."""
    b = ctx(request)
    foreign = foreign_file(request, body["prompt"])
    if foreign is not None:
        return unknown_file(foreign)
    url = requested_url(body)
    problem = refusal(b.settings.webhooks, url) if url is not None else None
    if problem is not None:
        return error_response(400, "invalid_webhook", "Webhook not allowed", problem)
    key = principal_of(request).key
    if key is None:
        return None
    delay = access_of(request).rates.take(key)
    if delay is not None:
        return too_many("Rate limit exceeded for this key", "", retry_after(delay))
    return None


def unknown_file(foreign: Foreign) -> web.Response:
    """ComfyUI's own answer for a LoadImage of a missing file: another
    tenant's file looks exactly like one that does not exist."""
    error = {
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": f"{foreign.input} - Invalid image file: {foreign.value}",
        "extra_info": {"input_name": foreign.input},
    }
    node = {"errors": [error], "dependent_outputs": [], "class_type": foreign.class_type}
    body = error_body("prompt_outputs_failed_validation", "Prompt outputs failed validation")
    return web.json_response({**body, "node_errors": {foreign.node: node}}, status=400)


def too_many(message: str, details: str, retry: str) -> web.Response:
    return error_response(429, "rate_limited", message, details, {"Retry-After": retry})


async def accepted(request: web.Request, body: dict[str, Any], status: int, answer: bytes) -> None:
    """After a 200: remember whose job it is, and its webhook."""
    if status != 200:
        return
    try:
        prompt_id = json.loads(answer).get("prompt_id")
    except (ValueError, AttributeError):
        return
    if not isinstance(prompt_id, str):
        return
    await access_of(request).owners.record(prompt_id, principal_of(request).tenant)
    if WEBHOOKS in request.app:
        url = requested_url(body)
        base = str(request.url.origin())
        request.app[WEBHOOKS].note(prompt_id, url if isinstance(url, str) else None, base)
