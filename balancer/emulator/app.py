"""create_emulator_app: every ComfyUI route at its bare path and under /api, plus control routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from .control import ControlRoutes
from .emulator import Emulator
from .executor import Spend
from .faults import counting_middleware, faults_middleware, slow_middleware
from .options import EmulatorOptions
from .routes_files import FileRoutes
from .routes_info import InfoRoutes
from .routes_queue import QueueRoutes
from .routes_ui import UiRoutes
from .routes_user import add_user_routes
from .ws import websocket_handler

EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)


def _comfy_routes(emu: Emulator, ui: UiRoutes) -> web.RouteTableDef:
    routes = web.RouteTableDef()
    QueueRoutes(emu).add_to(routes)
    InfoRoutes(emu).add_to(routes)
    FileRoutes(emu).add_to(routes)
    ui.add_to(routes)
    add_user_routes(emu, routes)

    async def ws(request: web.Request) -> web.StreamResponse:
        return await websocket_handler(
            request, emu.hub, emu.status, emu.server_flags, emu.on_connect
        )

    routes.get("/ws")(ws)
    return routes


def create_emulator_app(
    options: EmulatorOptions | None = None, spend: Spend = asyncio.sleep
) -> web.Application:
    """The emulator's app; `spend` is how simulated work takes its time."""
    emu = Emulator(options if options is not None else EmulatorOptions(), spend)
    middlewares = [counting_middleware(emu.requests), faults_middleware(emu.faults)]
    if emu.options.slow_paths and emu.options.object_info_cost > 0:
        middlewares.append(slow_middleware(emu.options.slow_paths, emu.options.object_info_cost))
    app = web.Application(client_max_size=emu.options.max_upload_size, middlewares=middlewares)
    app[EMULATOR] = emu
    ui = UiRoutes(emu)
    routes = _comfy_routes(emu, ui)
    app.add_routes(routes)
    for route in routes:
        if isinstance(route, web.RouteDef):
            web.RouteDef(route.method, "/api" + route.path, route.handler, route.kwargs).register(
                app.router
            )
    ControlRoutes(emu).add_to(app)
    ui.add_unaliased(app)  # last: the web root catches every other GET
    app.cleanup_ctx.append(partial(_lifecycle, emu))
    app.on_shutdown.append(partial(_drop_sockets, emu))
    return app


async def _drop_sockets(emu: Emulator, app: web.Application) -> None:
    """A stopping server drops its sockets instead of waiting for clients to leave."""
    emu.hub.abort_all()


async def _lifecycle(emu: Emulator, app: web.Application) -> AsyncIterator[None]:
    emu.start()
    yield
    await emu.stop()
    emu.hub.abort_all()
