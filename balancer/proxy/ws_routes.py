"""GET /ws and /api/ws: the balancer's own client sockets.

The first message is `status` with the sid (the client's `clientId`, or a
minted 32-hex id) and the pool-wide queue count. A first client message
`feature_flags` is answered with the pool's flags. A client reconnecting with
its sid is told which node its running job is on, as ComfyUI does, and gets
the rest of that job's events from then on. With several replicas, the
handshake is answered once this replica gets the sid's frames from the
others (replicas/bus.py): a client may post through another one at once.
"""

from __future__ import annotations

import uuid

from aiohttp import WSMsgType, web

from balancer import client_json
from balancer.auth.principal import principal_of
from balancer.jobs.states import ON_BACKEND
from balancer.proxy.context import ctx
from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_socket import ClientSocket, event

MAX_SID = 256


def server_flags(max_upload: int) -> dict[str, object]:
    return {"supports_preview_metadata": True, "max_upload_size": max_upload}


async def websocket(request: web.Request) -> web.StreamResponse:
    given = request.query.get("clientId", "")
    sid = given if 0 < len(given) <= MAX_SID else uuid.uuid4().hex
    async with ctx(request).hub.reachable(sid):  # before the handshake is answered
        return await session(request, sid)


async def session(request: web.Request, sid: str) -> web.WebSocketResponse:
    b = ctx(request)
    ws = web.WebSocketResponse(max_msg_size=1024 * 1024, compress=False)
    await ws.prepare(request)
    viewer = principal_of(request)
    sock = b.hub.connect(sid, ws, request.transport, viewer.tenant, viewer.sees_all)
    b.hub.greet(sock)
    # A node is kept only once a job's backend ran one, until the job leaves
    # that backend (one being recalled may still run there).
    on_backend = [
        job.prompt_id
        for job in await b.store.unfinished_jobs()
        if job.client_id == sid
        and job.state in ON_BACKEND
        and sock.may_see(await b.relay.owner_of(job.prompt_id))
    ]
    for node in (await b.relay.nodes.of(on_backend)).values():
        b.hub.send(sock, event("executing", {"node": node}))
    try:
        await read_client(b.hub, sock, b.settings.limits.max_body)
    finally:
        b.hub.remove(sock)
    return ws


async def read_client(hub: ClientHub, sock: ClientSocket, max_upload: int) -> None:
    """Only the first text message matters (ComfyUI ignores the rest)."""
    first = True
    async for msg in sock.ws:
        if msg.type != WSMsgType.TEXT or not first:
            continue
        first = False
        try:
            message = client_json.parse(msg.data)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") == "feature_flags":
            flags = message.get("data")
            sock.wants_metadata = isinstance(flags, dict) and bool(
                flags.get("supports_preview_metadata")
            )
            hub.send(sock, event("feature_flags", server_flags(max_upload)))
