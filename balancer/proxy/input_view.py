"""GET /view of a file in the balancer's upload store (`type=input`, and
unprefixed output/temp files that were uploaded to the balancer).

ComfyUI's rules: a filename starting with `/` or containing `..` is 400, a
subfolder escaping its directory 403, a missing file 404 (empty bodies, as
ComfyUI answers); the filename is reduced to its basename. Files are served
with FileResponse (Range, ETag, Last-Modified, 304s).
"""

from __future__ import annotations

import asyncio
import mimetypes

from aiohttp import web
from PIL import UnidentifiedImageError

from balancer.files.masks import variant
from balancer.files.paths import BadPath, FileKey, normalize_subfolder
from balancer.proxy.file_context import files_of

NOT_INLINE = (".html", ".htm", ".xhtml", ".js", ".css")


def stored_key(request: web.Request, filename: str, kind: str) -> FileKey | web.Response:
    """The store key a /view asks for, or ComfyUI's refusal."""
    if filename.startswith("/") or ".." in filename:
        return web.Response(status=400)
    try:
        subfolder = normalize_subfolder(request.query.get("subfolder", ""))
    except BadPath:
        return web.Response(status=403)
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return FileKey(kind, subfolder, name)


def in_store(request: web.Request, filename: str, kind: str) -> bool:
    key = stored_key(request, filename, kind)
    return isinstance(key, FileKey) and files_of(request).store.lookup(key) is not None


async def view_stored(request: web.Request, filename: str, kind: str) -> web.StreamResponse:
    key = stored_key(request, filename, kind)
    if not isinstance(key, FileKey):
        return key
    store = files_of(request).store
    sha = store.lookup(key)
    if sha is None or not key.name:
        return web.Response(status=404)
    path = store.blob_path(sha)
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
