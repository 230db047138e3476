"""Liveness and readiness, for container health checks and Kubernetes probes.

- `GET /balancer/health` (liveness): 200 whenever this process serves
  requests, whatever its backends do. A liveness probe that failed with the
  GPUs would restart a healthy balancer, dropping its queue and sockets.
- `GET /balancer/ready` (readiness): 200 only when at least
  `health.min_backends_up` backends can take prompts now (up with an open
  channel, not draining, fresh load data, enough free VRAM: the scheduler's
  own filters) and their catalogues have been read, else 503 with the
  reason. A backend whose catalogue is not read yet would refuse every
  prompt (unknown is not capable), so it is not ready either. A full
  backend is ready: its prompts wait in the balancer.
"""

from __future__ import annotations

from aiohttp import web

from balancer.catalog.fit import Fit
from balancer.proxy.context import ctx
from balancer.scheduling import NoBackend, candidates_from
from balancer.scheduling.filters import DEFAULT_FILTERS
from balancer.scheduling.picker import apply_filters


async def get_health(request: web.Request) -> web.StreamResponse:
    registry = ctx(request).registry
    return web.json_response(
        {"status": "ok", "backends": len(registry), "backends_up": len(registry.healthy())}
    )


async def get_ready(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    needed = b.settings.health.min_backends_up
    backends = list(b.registry)
    # Ready means able to take a prompt at all: no prompt's needs to fit here.
    candidates = candidates_from(backends, b.clock(), b.settings.probe, lambda _name: Fit())
    eligible = apply_filters(candidates, DEFAULT_FILTERS)
    able = [] if isinstance(eligible, NoBackend) else eligible
    ready = [c for c in able if b.catalogues.get(c.name) is not None]
    body: dict[str, object] = {
        "status": "ready",
        "backends": len(backends),
        "backends_ready": len(ready),
        "min_backends_up": needed,
    }
    if len(ready) >= needed:
        return web.json_response(body)
    if isinstance(eligible, NoBackend):
        reason, message = eligible.outcome, eligible.message
    elif not ready:
        reason, message = "catalogue_unread", "no backend's nodes and models have been read yet"
    else:
        reason = "too_few_backends"
        message = f"{len(ready)} of {len(backends)} backends can take prompts; {needed} needed"
    body.update(status="not_ready", reason=reason, message=message)
    return web.json_response(body, status=503)
