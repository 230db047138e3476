"""GET /view of an output that is in the bucket: streamed from it, or a 302
to a signed URL (`outputs.view`). It works when the backend that wrote the
file is gone; a file not stored (or not reachable in the bucket) is left to
the backend, as before."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from botocore.exceptions import BotoCoreError

from balancer.logs import get_logger
from balancer.outputs.bucket import BucketError
from balancer.outputs.sink import OutputSink

log = get_logger("balancer.outputs")
CHUNK = 256 * 1024


async def view_from_bucket(
    request: web.Request, sink: OutputSink, ref: tuple[str, str, str]
) -> web.StreamResponse | None:
    """The answer from the bucket, or None to ask the backend instead."""
    key = sink.files.key_of(ref)
    if key is None:
        return None
    url = await sink.links.url(key) if sink.settings.view == "redirect" else None
    if url is not None:
        raise web.HTTPFound(url)
    try:
        stored = await sink.bucket.get(key, request.headers.get("Range"))
    except BucketError as exc:
        log.warning("output_view_failed", key=key, error=str(exc))
        return None
    if stored is None:
        return None
    resp = web.StreamResponse(status=206 if stored.content_range else 200)
    resp.content_type = stored.content_type or "application/octet-stream"
    resp.content_length = stored.size
    resp.headers["Accept-Ranges"] = "bytes"
    if stored.content_range:
        resp.headers["Content-Range"] = stored.content_range
    async with stored.body as body:
        await resp.prepare(request)
        try:
            async for chunk in body.iter_chunks(CHUNK):
                await resp.write(chunk)
        except (aiohttp.ClientError, BotoCoreError) as exc:  # headers are gone: cut it short
            log.warning("output_view_broken", key=key, error=str(exc))
            return resp
    await resp.write_eof()
    return resp
