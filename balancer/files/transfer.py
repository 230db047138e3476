"""Moving files between the store and backends, streamed both ways.

`fetch` reads a file a backend holds (GET /view) into the store; `push` puts
a stored blob (its local file, `Uploads.blob_file`) on a backend
(POST /upload/image, overwrite=true, same type, subfolder and name).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import aiohttp

from balancer.files.paths import FileKey
from balancer.files.uploads import Uploads
from balancer.logs import get_logger
from balancer.upstream import UpstreamConnectError, UpstreamError

log = get_logger("balancer.files")

CHUNK = 256 * 1024


class TooLarge(Exception):
    pass


async def fetch(
    session: aiohttp.ClientSession, base_url: str, key: FileKey, store: Uploads, limit: int
) -> str | None:
    """The sha256 of the backend's file, now in the store; None if it has no
    such file or cannot be reached (the prompt then gets the backend's 400)."""
    params = {"filename": key.name, "subfolder": key.subfolder, "type": key.type}
    try:
        async with session.get(
            base_url + "/view", params=params, headers={"Accept-Encoding": "identity"}
        ) as resp:
            if resp.status != 200:
                log.info("fetch_missing", url=base_url, type=key.type, status=resp.status)
                return None
            return await _receive(resp.content, store, limit)
    except (TimeoutError, aiohttp.ClientError, TooLarge) as exc:
        log.warning("fetch_failed", url=base_url, type=key.type, error=type(exc).__name__)
        return None


async def _receive(stream: aiohttp.StreamReader, store: Uploads, limit: int) -> str:
    writer = store.writer()
    try:
        async for chunk in stream.iter_chunked(CHUNK):
            writer.write(chunk)
            if writer.size > limit:
                raise TooLarge
    except BaseException:
        writer.abort()
        raise
    return await writer.finish()


async def push(session: aiohttp.ClientSession, base_url: str, key: FileKey, blob: Path) -> FileKey:
    """Upload a blob (its local file) to a backend; return the key the
    backend says it used."""
    content_type = mimetypes.guess_type(key.name)[0] or "application/octet-stream"
    try:
        with open(blob, "rb") as body:
            form = aiohttp.FormData()
            form.add_field("image", body, filename=key.name, content_type=content_type)
            form.add_field("overwrite", "true")
            form.add_field("type", key.type)
            form.add_field("subfolder", key.subfolder)
            async with session.post(base_url + "/upload/image", data=form) as resp:
                answer = await resp.json(content_type=None) if resp.status == 200 else None
                status = resp.status
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamConnectError(f"{type(exc).__name__}: {exc}") from exc
    except (TimeoutError, aiohttp.ClientError, ValueError, OSError) as exc:
        raise UpstreamError(f"upload to {base_url} failed: {type(exc).__name__}") from exc
    if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
        raise UpstreamError(f"upload to {base_url} failed: HTTP {status}")
    subfolder = answer.get("subfolder")
    return FileKey(
        str(answer.get("type") or key.type),
        subfolder if isinstance(subfolder, str) else key.subfolder,
        answer["name"],
    )
