"""/_emulator/* control routes (outside ComfyUI's namespace, never faulted)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .emulator import Emulator

JSON = dict[str, Any]


def state_of(emu: Emulator) -> JSON:
    running = emu.queue.running
    return {
        "name": emu.options.name,
        "queue": {
            "running": [running.prompt_id] if running is not None else [],
            "pending": [item.prompt_id for item in emu.queue.pending()],
            "remaining": emu.queue.remaining(),
        },
        "running": running.prompt_id if running is not None else None,
        "paused": emu.paused,
        "vram": {
            "total": emu.options.vram_total,
            "used": emu.memory.used(),
            "free": emu.memory.free(),
            "loaded_checkpoint": emu.memory.loaded,
            "resident_models": list(emu.memory.resident),
            "model_loads": emu.memory.loads,
            "override": emu.memory.override_used,
        },
        "faults": emu.faults.as_dict(),
        "held": list(emu.faults.held),  # paths of the requests a hang holds now
        "executed": len(emu.executed),
        "history": len(emu.history),
        "requests": dict(emu.requests),
    }


class ControlRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/_emulator/state", self.state)
        app.router.add_post("/_emulator/faults", self.faults)
        app.router.add_post("/_emulator/vram", self.vram)
        app.router.add_post("/_emulator/pause", self.pause)
        app.router.add_post("/_emulator/resume", self.resume)
        app.router.add_post("/_emulator/crash", self.crash)

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(state_of(self.emu))

    async def faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            self.emu.faults.update(body)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.emu.faults.as_dict())

    async def vram(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            used = body["used"]
            self.emu.set_vram_used(None if used is None else int(used))
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(state_of(self.emu)["vram"])

    async def pause(self, request: web.Request) -> web.Response:
        self.emu.pause()
        return web.json_response({"paused": True})

    async def resume(self, request: web.Request) -> web.Response:
        self.emu.resume()
        return web.json_response({"paused": False})

    async def crash(self, request: web.Request) -> web.Response:
        await self.emu.crash()
        return web.json_response({"crashed": True})
