"""POST /upload/image and /upload/mask, answered from the balancer's store.

The multipart body is streamed to disk while it is hashed; the answer has
ComfyUI's shape and naming (see `Uploads.assign`). Unlike ComfyUI, bad
names, a bad `type` and an unusable `original_ref` are 400s in ComfyUI's
error shape, never a 500 or a silent success.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from PIL import UnidentifiedImageError

from balancer import client_json
from balancer.auth.principal import principal_of
from balancer.auth.uploads import may_use, scoped_key
from balancer.errors import error_response, too_large
from balancer.files import transfer
from balancer.files.locate import locate
from balancer.files.masks import apply_mask
from balancer.files.naming import PREFIX
from balancer.files.paths import BadPath, FileKey, file_key, normalize_subfolder, split_annotation
from balancer.files.uploads import BlobWriter
from balancer.logs import get_logger
from balancer.proxy.context import ctx
from balancer.proxy.file_context import Files, files_of

log = get_logger("balancer.files")

CHUNK = 256 * 1024
MAX_FIELD = 64 * 1024


class Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    image: BlobWriter | None = None

    def abort(self) -> None:
        if self.image is not None:
            self.image.abort()


def bad(message: str, details: str = "") -> Refused:
    return Refused(error_response(400, "invalid_upload", message, details))


async def read_form(request: web.Request, files: Files) -> Form:
    """Fields as text, the `image` part streamed into a blob writer."""
    limit = files.max_upload
    if request.content_length is not None and request.content_length > limit:
        raise Refused(too_large(limit))
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as exc:
        raise bad("Expected a multipart/form-data body", str(exc)) from None
    form = Form()
    seen = 0
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise bad("Nested multipart bodies are not supported")
            image = None
            if part.name == "image" and part.filename is not None and form.image is None:
                form.filename = part.filename
                form.image = image = files.store.writer()
            chunks: list[bytes] = []
            while chunk := await part.read_chunk(CHUNK):
                seen += len(chunk)
                if seen > limit:
                    raise Refused(too_large(limit))
                if image is not None:
                    image.write(chunk)
                elif sum(map(len, chunks)) + len(chunk) > MAX_FIELD:
                    raise bad(f"Form field {part.name!r} is too long")
                else:
                    chunks.append(chunk)
            if image is None and part.name:
                form.fields[part.name] = b"".join(chunks).decode("utf-8", "replace")
    except BaseException:
        form.abort()
        raise
    return form


def target_key(request: web.Request, form: Form) -> FileKey:
    """Where the upload goes: resolved first, then (a client key) moved
    under the caller's own folder."""
    if form.image is None or not form.filename:
        raise bad("No image file in the upload", "the 'image' part with a filename is required")
    subfolder = form.fields.get("subfolder", "")
    try:
        key = file_key(form.fields.get("type") or "input", subfolder, form.filename)
        if key.subfolder.startswith(PREFIX):
            raise BadPath(f"subfolders starting with {PREFIX!r} name backends and are reserved")
    except BadPath as exc:
        raise bad("Invalid upload path", str(exc)) from None
    return scoped_key(principal_of(request), key)


def answer(form: Form, key: FileKey, final: FileKey) -> web.Response:
    """ComfyUI echoes the subfolder as given; a client key's is its folder's."""
    given = form.fields.get("subfolder", "")
    subfolder = given if key.subfolder == normalize_subfolder(given) else key.subfolder
    return web.json_response({"name": final.name, "subfolder": subfolder, "type": final.type})


async def _received(request: web.Request) -> tuple[Files, Form, FileKey] | web.Response:
    """The streamed form with a valid target, or the 4xx that refuses it."""
    files = files_of(request)
    try:
        form = await read_form(request, files)
        key = _validated(request, form)
    except Refused as refused:
        return refused.response
    assert form.image is not None
    return files, form, key


async def _keep(
    files: Files, form: Form, key: FileKey, sha: str, event: str, size: int, started: float
) -> web.Response:
    """Name the stored bytes as ComfyUI would, log it, and answer."""
    overwrite = form.fields.get("overwrite") in ("true", "1")
    final = await files.store.assign(key, sha, overwrite)
    _log_upload(event, key, final, size, started)
    await files.placement.evict()
    return answer(form, key, final)


async def upload_image(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    received = await _received(request)
    if isinstance(received, web.Response):
        return received
    files, form, key = received
    assert form.image is not None
    sha = await form.image.finish()
    return await _keep(files, form, key, sha, "upload", form.image.size, started)


def _validated(request: web.Request, form: Form) -> FileKey:
    try:
        return target_key(request, form)
    except Refused:
        form.abort()
        raise


async def upload_mask(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    received = await _received(request)
    if isinstance(received, web.Response):
        return received
    files, form, key = received
    assert form.image is not None
    try:
        original = await _original(request, files, form.fields.get("original_ref"))
        mask_path = form.image.flush()
        merged = await asyncio.to_thread(apply_mask, original, mask_path)
    except Refused as refused:
        return refused.response
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return error_response(400, "invalid_upload", "Cannot apply the mask", str(exc))
    finally:
        form.image.abort()
    sha = await files.store.add_bytes(merged)
    return await _keep(files, form, key, sha, "upload_mask", len(merged), started)


async def _original(request: web.Request, files: Files, raw: str | None) -> Path:
    """The image `original_ref` names (a local file), fetched into the store."""
    try:
        ref: Any = client_json.parse(raw or "")
        if not isinstance(ref, dict):
            raise ValueError("not an object")
        name, kind = split_annotation(str(ref.get("filename") or ""), ref.get("type") or "output")
        location = locate(str(kind), str(ref.get("subfolder") or ""), name)
        if not may_use(request, location):
            raise ValueError("no such file")  # another tenant's: like a missing one
    except (ValueError, BadPath) as exc:
        raise bad("Invalid original_ref", str(exc)) from None
    key, owner = location.key, location.backend
    sha = None if owner is not None else await files.store.lookup(key)
    if sha is None:
        sha = await _fetch_original(request, files, key, owner)
    blob = await files.store.blob_file(sha) if sha is not None else None
    if blob is None:
        raise bad("The original image of the mask was not found", key.relative)
    return blob


async def _fetch_original(
    request: web.Request, files: Files, key: FileKey, owner: str | None
) -> str | None:
    registry = ctx(request).registry
    backends = list(registry)
    holder = registry.get(owner) if owner else (backends[0] if len(backends) == 1 else None)
    if holder is None or (key.type == "input" and owner is None):
        return None
    return await transfer.fetch(files.session, holder.url, key, files.store, files.max_upload)


def _log_upload(event: str, key: FileKey, final: FileKey, size: int, started: float) -> None:
    log.info(
        event,
        type=final.type,
        bytes=size,
        renamed=final.name != key.name,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
