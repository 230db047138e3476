"""GET /view of a file in the balancer's upload store (`type=input`, and
unprefixed output/temp files that were uploaded to the balancer).

The caller (`view_routes`) has resolved the location already; this serves
the store's file at exactly that key with FileResponse (Range, ETag,
Last-Modified, 304s), or 404 with an empty body as ComfyUI answers.
"""

from __future__ import annotations

import asyncio
import mimetypes

from aiohttp import web
from PIL import UnidentifiedImageError

from balancer.files.masks import variant
from balancer.files.paths import FileKey
from balancer.proxy.file_context import files_of

NOT_INLINE = (".html", ".htm", ".xhtml", ".js", ".css")


async def stored_sha(request: web.Request, key: FileKey) -> str | None:
    """The sha256 of the stored file at `key` (the location already resolved)."""
    return await files_of(request).store.lookup(key)


async def view_stored(request: web.Request, key: FileKey, sha: str | None) -> web.StreamResponse:
    """The blob `sha` (what `stored_sha` found at `key`) as the file `key`."""
    path = await files_of(request).store.blob_file(sha) if sha is not None else None
    if path is None:
        return web.Response(status=404)
    disposition = {"Content-Disposition": f'filename="{key.name}"'}
    preview = request.query.get("preview")
    channel = request.query.get("channel", "rgba")
    if preview or channel in ("rgb", "a"):
        try:
            body, content_type = await asyncio.to_thread(variant, path, preview, channel)
        except (UnidentifiedImageError, OSError, ValueError):
            return web.Response(status=400)
        return web.Response(body=body, content_type=content_type, headers=disposition)
    content_type = mimetypes.guess_type(key.name)[0] or "application/octet-stream"
    if key.name.lower().endswith(NOT_INLINE):
        content_type = "application/octet-stream"
    return web.FileResponse(path, headers={**disposition, "Content-Type": content_type})
