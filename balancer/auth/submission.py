"""The gate in front of POST /prompt: files of other tenants and the webhook
allow-list; the caller's quota; and noting whose job it is. The key's queue
cap and rate are counted by the submitter, atomically with recording the job."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from balancer.auth.access import access_of
from balancer.auth.limits import key_rate
from balancer.auth.principal import principal_of
from balancer.auth.uploads import Foreign, foreign_file
from balancer.errors import error_body, error_response
from balancer.jobs.submission import Quota
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
    return None


def quota_of(request: web.Request) -> Quota:
    """The caller's tenant, its key's cap and rate, counted by the submitter
    in one step with accepting the job."""
    principal = principal_of(request)
    key = principal.key
    if key is None:
        return Quota(principal.tenant)
    return Quota(principal.tenant, key.max_queued, key_rate(access_of(request).rates, key))


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


async def accepted(
    request: web.Request, body: dict[str, Any], prompt_id: str, fresh: bool = False
) -> None:
    """After a 200: remember whose job it is (`fresh`: its caller's, as this
    request recorded it), and its webhook."""
    await access_of(request).owners.record(prompt_id, principal_of(request).tenant, fresh)
    if WEBHOOKS in request.app:
        url = requested_url(body)
        base = str(request.url.origin())
        request.app[WEBHOOKS].note(prompt_id, url if isinstance(url, str) else None, base)
