"""WebSocket clients: registry by sid, targeted and broadcast events, binary preview frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

JSON = dict[str, Any]
PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
PNG_FORMAT = 2
Frame = str | bytes | None  # None closes the writer


@dataclass(eq=False)
class Client:
    sid: str
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    feature_flags: JSON = field(default_factory=dict)
    outbox: asyncio.Queue[Frame] = field(default_factory=asyncio.Queue)
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # its handler is over

    @property
    def wants_metadata(self) -> bool:
        return bool(self.feature_flags.get("supports_preview_metadata"))

    def send_json(self, event: str, data: JSON) -> None:
        self.outbox.put_nowait(json.dumps({"type": event, "data": data}))

    def send_bytes(self, payload: bytes) -> None:
        self.outbox.put_nowait(payload)


def preview_frame(png: bytes) -> bytes:
    return struct.pack(">II", PREVIEW_IMAGE, PNG_FORMAT) + png


def metadata_frame(png: bytes, metadata: JSON) -> bytes:
    meta = json.dumps(metadata).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + png


class Hub:
    """Every connected socket. Sends never block the caller (one writer task per socket)."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}

    def broadcast(self, event: str, data: JSON) -> None:
        for client in list(self.clients.values()):
            client.send_json(event, data)

    def to_client(self, client_id: str | None, event: str, data: JSON) -> None:
        """ComfyUI's targeting (A): only the prompt's client; nothing without client_id."""
        if client_id is not None and client_id in self.clients:
            self.clients[client_id].send_json(event, data)

    def to_client_or_all(self, client_id: str | None, event: str, data: JSON) -> None:
        """Targeting (B): the prompt's client, or every socket when there is no client_id."""
        if client_id is None:
            self.broadcast(event, data)
        else:
            self.to_client(client_id, event, data)

    def progress_step(
        self, client_id: str | None, state: JSON, progress: JSON, png: bytes | None, meta: JSON
    ) -> None:
        """progress_state, progress and an optional preview, in the recorded per-socket order."""
        targets = list(self.clients.values()) if client_id is None else []
        if client_id is not None and client_id in self.clients:
            targets = [self.clients[client_id]]
        for client in targets:
            client.send_json("progress_state", state)
            if png is not None and client_id is not None and client.wants_metadata:
                client.send_bytes(metadata_frame(png, meta))
                client.send_json("progress", progress)
                continue
            client.send_json("progress", progress)
            if png is not None:
                client.send_bytes(preview_frame(png))

    def abort_all(self) -> None:
        """Kill every socket like a dying process would (the peer sees 1006)."""
        for client in list(self.clients.values()):
            if client.transport is not None:
                client.transport.abort()
            client.outbox.put_nowait(None)
        self.clients.clear()


async def _writer(client: Client) -> None:
    while True:
        frame = await client.outbox.get()
        if frame is None or client.ws.closed:
            return
        try:
            if isinstance(frame, bytes):
                await client.ws.send_bytes(frame)
            else:
                await client.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            return


async def websocket_handler(
    request: web.Request,
    hub: Hub,
    status: Callable[[], JSON],
    server_flags: Callable[[], JSON],
    on_connect: Callable[[Client], None],
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    sid = request.query.get("clientId") or uuid.uuid4().hex
    transport = request.transport
    client = Client(sid, ws, transport if isinstance(transport, asyncio.Transport) else None)
    # Like ComfyUI: a socket already registered under this sid is dropped, not
    # closed, and the sid's later events (looked up at each send) come here.
    hub.clients[sid] = client
    writer = asyncio.create_task(_writer(client))
    client.send_json("status", {**status(), "sid": sid})
    on_connect(client)
    first = True
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT or not first:
                continue
            first = False
            try:
                parsed = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(parsed, dict) and parsed.get("type") == "feature_flags":
                data = parsed.get("data")
                client.feature_flags = data if isinstance(data, dict) else {}
                client.send_json("feature_flags", server_flags())
    finally:
        # ComfyUI pops by sid: a fast same-sid reconnect loses its registration here.
        hub.clients.pop(sid, None)
        client.outbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        client.gone.set()
    return ws
