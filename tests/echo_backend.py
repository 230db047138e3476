"""A stand-in backend for pass-through tests: it answers probes and echoes
every request that reached it (method, raw path, headers, body)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BIG = 6 * 1024 * 1024


def echo_backend(
    tmp_path: Path, gets: Mapping[str, Handler] | None = None
) -> tuple[web.Application, list[dict[str, Any]]]:
    """A stand-in backend that answers probes and echoes what reached it;
    `gets`: more GET routes (path: handler), before the echo."""
    seen: list[dict[str, Any]] = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    media = tmp_path / "clip.bin"
    media.write_bytes(bytes(range(256)) * 64)

    async def queue(_: web.Request) -> web.Response:
        return web.json_response({"queue_running": [], "queue_pending": []})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"system": {"argv": []}, "devices": []})

    async def big(_: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(_)
        for _i in range(BIG // 65536):
            await resp.write(b"z" * 65536)
        return resp

    async def clip(_: web.Request) -> web.FileResponse:
        return web.FileResponse(media)

    async def no_channel(_: web.Request) -> web.Response:
        return web.Response(status=404)  # no event channel here

    async def die(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        record = {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": dict(request.headers),
            "body_len": len(body),
            "body": body.decode(errors="replace")[:200],
        }
        seen.append(record)
        return web.json_response(record, headers={"X-Backend": "echo", "Keep-Alive": "timeout=5"})

    app = web.Application(client_max_size=BIG * 2)
    app.router.add_get("/queue", queue)
    app.router.add_get("/system_stats", stats)
    app.router.add_get("/big", big)
    app.router.add_get("/clip.bin", clip)
    app.router.add_get("/die", die)
    app.router.add_get("/ws", no_channel)
    for path, handler in (gets or {}).items():
        app.router.add_get(path, handler)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app, seen
