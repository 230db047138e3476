"""POST/GET /prompt, /queue, /interrupt, /free and /history, as ComfyUI 0.3.64 answers them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from .emulator import Emulator
from .faults import INTERNAL_ERROR_TEXT
from .queue import QueueItem

JSON = dict[str, Any]


def internal_error() -> web.Response:
    return web.Response(status=500, text=INTERNAL_ERROR_TEXT)


async def _json_body(request: web.Request) -> Any:
    return json.loads(await request.text())


def _no_prompt() -> JSON:
    error = {
        "type": "no_prompt",
        "message": "No prompt provided",
        "details": "No prompt provided",
        "extra_info": {},
    }
    return {"error": error, "node_errors": {}}


class QueueRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def add_to(self, routes: web.RouteTableDef) -> None:
        routes.post("/prompt")(self.post_prompt)
        routes.get("/prompt")(self.get_prompt)
        routes.get("/queue")(self.get_queue)
        routes.post("/queue")(self.post_queue)
        routes.post("/interrupt")(self.post_interrupt)
        routes.post("/free")(self.post_free)
        routes.get("/history")(self.get_history)
        routes.get("/history/{prompt_id}")(self.get_history_item)
        routes.post("/history")(self.post_history)

    async def post_prompt(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            return self._submit(body)
        except Exception:
            return internal_error()

    def _submit(self, body: JSON) -> web.Response:
        emu = self.emu
        if "number" in body:
            number: int | float = float(body["number"])
        else:
            number = emu.number
            if body.get("front"):
                number = -number
            emu.number += 1
        if "prompt" not in body:
            return web.json_response(_no_prompt(), status=400)
        prompt = body["prompt"]
        prompt_id = str(body["prompt_id"]) if "prompt_id" in body else str(uuid.uuid4())
        targets = body.get("partial_execution_targets")
        result = emu.validator().validate(prompt, targets)
        if not result.ok:
            return web.json_response(
                {"error": result.error, "node_errors": result.node_errors}, status=400
            )
        extra_data = body.get("extra_data", {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        emu.enqueue(QueueItem(number, prompt_id, prompt, extra_data, result.outputs))
        answer = {"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors}
        return web.json_response(answer)

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.emu.status()["status"])

    async def get_queue(self, request: web.Request) -> web.Response:
        queue = self.emu.queue
        running = [queue.running.as_list()] if queue.running is not None else []
        pending = [item.as_list() for item in queue.pending()]
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def post_queue(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            if body.get("clear"):
                self.emu.queue.clear_pending()
                self.emu.broadcast_status()
            for prompt_id in body.get("delete", []):
                if self.emu.queue.delete_pending(prompt_id):
                    self.emu.broadcast_status()
                    if not self.emu.queue.pending():
                        # recorded: the delete that empties the queue sends two
                        self.emu.broadcast_status()
        except Exception:
            return internal_error()
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            return internal_error()
        prompt_id = body.get("prompt_id")
        self.emu.interrupt(None if prompt_id is None else str(prompt_id))
        return web.Response(status=200)

    async def post_free(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            unload = bool(body.get("unload_models", False))
            free = bool(body.get("free_memory", False))
        except Exception:
            return internal_error()
        self.emu.free(unload, free)
        return web.Response(status=200)

    async def get_history(self, request: web.Request) -> web.Response:
        try:
            raw_max = request.query.get("max_items")
            max_items = int(raw_max) if raw_max is not None else None
            offset = int(request.query.get("offset", -1))
        except ValueError:
            return internal_error()
        return web.json_response(self.emu.queue.history_page(max_items, offset))

    async def get_history_item(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.emu.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def post_history(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            if body.get("clear"):
                self.emu.history.clear()
            for prompt_id in body.get("delete", []):
                self.emu.history.pop(prompt_id, None)
        except Exception:
            return internal_error()
        return web.Response(status=200)
