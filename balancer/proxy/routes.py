"""The route table: each ComfyUI route at its bare path and under `/api`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from balancer.ops.health import get_health, get_ready
from balancer.outputs.routes import delete_outputs
from balancer.proxy import (
    aggregate_routes,
    fanout_routes,
    history_routes,
    jobs_routes,
    object_info_routes,
    pinned_routes,
    prompt_routes,
    upload_routes,
)
from balancer.proxy.passthrough import passthrough
from balancer.proxy.userdata_routes import user_data_routes
from balancer.proxy.view_routes import get_view
from balancer.proxy.ws_routes import websocket

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, path, handler); every one is also served at "/api" + path.
COMFY_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/prompt", prompt_routes.post_prompt),
    ("GET", "/prompt", prompt_routes.get_prompt),
    ("GET", "/queue", aggregate_routes.get_queue),
    ("POST", "/queue", fanout_routes.post_queue),
    ("GET", "/history", history_routes.get_history),
    ("POST", "/history", fanout_routes.post_history),
    ("GET", "/history/{prompt_id}", pinned_routes.get_history_item),
    ("POST", "/interrupt", pinned_routes.post_interrupt),
    ("POST", "/free", fanout_routes.post_free),
    ("GET", "/system_stats", aggregate_routes.get_system_stats),
    ("GET", "/view", get_view),
    ("POST", "/upload/image", upload_routes.upload_image),
    ("POST", "/upload/mask", upload_routes.upload_mask),
    ("GET", "/object_info", object_info_routes.get_object_info),
    ("GET", "/object_info/{node_class}", object_info_routes.get_object_info_class),
    ("GET", "/models", object_info_routes.get_models),
    ("GET", "/models/{folder}", object_info_routes.get_models_folder),
    ("GET", "/embeddings", object_info_routes.get_embeddings),
    ("GET", "/ws", websocket),
)

# The newer server registers these with a literal /api prefix.
JOB_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/api/jobs", jobs_routes.list_jobs),
    ("POST", "/api/jobs/cancel", jobs_routes.cancel_jobs),
    ("GET", "/api/jobs/{job_id}", jobs_routes.get_job),
    ("POST", "/api/jobs/{job_id}/cancel", jobs_routes.cancel_job),
    ("DELETE", "/api/jobs/{job_id}/outputs", delete_outputs),
)


def add_route(router: web.UrlDispatcher, method: str, path: str, handler: Handler) -> None:
    if method == "GET":
        router.add_get(path, handler, allow_head=True)
    else:
        router.add_route(method, path, handler)


def setup_routes(app: web.Application) -> None:
    router = app.router
    for method, path, handler in (*COMFY_ROUTES, *user_data_routes()):
        add_route(router, method, path, handler)
        add_route(router, method, "/api" + path, handler)
    for method, path, handler in JOB_ROUTES:
        add_route(router, method, path, handler)
    add_route(router, "GET", "/balancer/health", get_health)
    add_route(router, "GET", "/balancer/ready", get_ready)
    router.add_route("*", "/{tail:.*}", passthrough)
