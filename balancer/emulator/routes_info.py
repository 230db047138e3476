"""Catalogue and status routes: /system_stats, /features, /object_info, /models, ..."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from aiohttp import web

from .catalog import MODEL_FOLDERS
from .emulator import Emulator
from .frontend import TEMPLATES_PIN, templates_version

JSON = dict[str, Any]


def _ram() -> tuple[int, int]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 32 * 1024**3, 16 * 1024**3


class InfoRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def add_to(self, routes: web.RouteTableDef) -> None:
        routes.get("/system_stats")(self.system_stats)
        routes.get("/features")(self.features)
        routes.get("/object_info")(self.object_info)
        routes.get("/object_info/{node_class}")(self.object_info_class)
        routes.get("/models")(self.models)
        routes.get("/models/{folder}")(self.models_folder)
        routes.get("/embeddings")(self.embeddings)

    def system_stats_body(self) -> JSON:
        emu = self.emu
        ram_total, ram_free = _ram()
        used = emu.memory.used()
        torch_reserved = max(0, used - emu.options.vram_base_used)
        device = {
            "name": emu.options.device_name,
            "type": "cuda",
            "index": 0,
            "vram_total": emu.options.vram_total,
            "vram_free": emu.memory.free(),
            "torch_vram_total": torch_reserved,
            "torch_vram_free": 0,
        }
        system = {
            "os": os.name,
            "ram_total": ram_total,
            "ram_free": ram_free,
            "comfyui_version": "0.3.64",
            "required_frontend_version": "1.27.10",
            "installed_templates_version": templates_version(),
            "required_templates_version": TEMPLATES_PIN,
            "python_version": sys.version,
            "pytorch_version": "2.13.0+emulated",
            "embedded_python": False,
            "argv": ["main.py", "--emulator", emu.options.name],
        }
        return {"system": system, "devices": [device]}

    async def system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.system_stats_body())

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(self.emu.server_flags())

    async def object_info(self, request: web.Request) -> web.Response:
        if self.emu.options.object_info_cost > 0:  # the loop held, as ComfyUI's
            time.sleep(self.emu.options.object_info_cost)
        return web.json_response(self.emu.catalog.all_info())

    async def object_info_class(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        if not self.emu.catalog.has(name):
            return web.json_response({})
        return web.json_response({name: self.emu.catalog.info(name)})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(list(MODEL_FOLDERS))

    async def models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response(self.emu.catalog.models_in(folder))

    async def embeddings(self, request: web.Request) -> web.Response:
        """Embedding names without their extension, as ComfyUI lists them."""
        names = self.emu.catalog.models_in("embeddings")
        return web.json_response([name.rsplit(".", 1)[0] for name in names])
