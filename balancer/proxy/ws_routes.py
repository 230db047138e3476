"""GET /ws and /api/ws: the balancer's own client sockets.

The first message is `status` with the sid (the client's `clientId`, or a
minted 32-hex id) and the pool-wide queue count. A first client message
`feature_flags` is answered with the pool's flags. A client reconnecting with
its sid is told which node its running job is on, as ComfyUI does, and gets
the rest of that job's events from then on.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from aiohttp import WSMsgType, web

from balancer.auth.principal import principal_of
from balancer.jobs.model import JobState
from balancer.proxy.context import ctx
from balancer.proxy.ws_hub import ClientSocket, event

MAX_SID = 256


def server_flags(max_upload: int) -> dict[str, object]:
    return {"supports_preview_metadata": True, "max_upload_size": max_upload}


async def websocket(request: web.Request) -> web.StreamResponse:
    b = ctx(request)
    ws = web.WebSocketResponse(max_msg_size=1024 * 1024)
    await ws.prepare(request)
    given = request.query.get("clientId", "")
    sid = given if 0 < len(given) <= MAX_SID else uuid.uuid4().hex
    viewer = principal_of(request)
    sock = ClientSocket(
        sid, ws, transport=request.transport, tenant=viewer.tenant, sees_all=viewer.sees_all
    )
    b.hub.add(sock)
    writer = asyncio.create_task(sock.write_loop())
    sock.send(b.hub.status(sid))
    for job in b.tracker.unfinished_of(sid):
        visible = sock.may_see(b.relay.owner_of(job.prompt_id))
        if visible and job.state is JobState.RUNNING and job.node is not None:
            sock.send(event("executing", {"node": job.node}))
    try:
        await read_client(sock, b.settings.limits.max_body)
    finally:
        b.hub.remove(sock)
        sock.send_stop()
        await asyncio.gather(writer, return_exceptions=True)
    return ws


async def read_client(sock: ClientSocket, max_upload: int) -> None:
    """Only the first text message matters (ComfyUI ignores the rest)."""
    first = True
    async for msg in sock.ws:
        if msg.type != WSMsgType.TEXT or not first:
            continue
        first = False
        try:
            message = json.loads(msg.data)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") == "feature_flags":
            flags = message.get("data")
            sock.wants_metadata = isinstance(flags, dict) and bool(
                flags.get("supports_preview_metadata")
            )
            sock.send(event("feature_flags", server_flags(max_upload)))
