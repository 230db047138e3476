"""GET /view and POST /upload/image|mask, with ComfyUI's path and naming rules."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from .emulator import Emulator
from .files import FOLDER_TYPES, PathEscapeError, inside, join_subfolder, split_annotation
from .masks import masked, reencoded
from .routes_queue import internal_error


class FileRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def add_to(self, routes: web.RouteTableDef) -> None:
        routes.get("/view")(self.view)
        routes.post("/upload/image")(self.upload_image)
        routes.post("/upload/mask")(self.upload_mask)

    async def view(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        if "filename" not in query:
            return web.Response(status=404)
        filename, kind = split_annotation(query["filename"], query.get("type", "output"))
        if filename.startswith("/") or ".." in filename:
            return web.Response(status=400)
        if kind not in FOLDER_TYPES:
            return web.Response(status=400)
        try:
            folder = join_subfolder(self.emu.dirs.folder(kind), query.get("subfolder", ""))
        except PathEscapeError:
            return web.Response(status=403)
        name = os.path.basename(filename)
        path = folder / name
        if not path.is_file():
            return web.Response(status=404)
        disposition = f'filename="{name}"'
        preview = query.get("preview")
        channel = query.get("channel", "rgba")
        if preview or channel in ("rgb", "a"):
            body, content_type = reencoded(path, preview, channel)
            headers = {"Content-Disposition": disposition}
            return web.Response(body=body, content_type=content_type, headers=headers)
        response = web.FileResponse(path, headers={"Content-Disposition": disposition})
        if name.endswith((".html", ".htm", ".xhtml", ".js", ".css")):
            response.content_type = "application/octet-stream"
        return response

    async def _store(self, post: Any, written: bytes | None = None) -> web.Response:
        """Save the upload under ComfyUI's naming; `written` (a composited
        mask) is what lands on disk, while the duplicate check, as in ComfyUI,
        hashes the uploaded bytes."""
        image = post.get("image")
        if not isinstance(image, FileField) or not image.filename:
            return web.Response(status=400)
        kind = post.get("type") or "input"
        if kind not in FOLDER_TYPES:
            return internal_error()
        upload_dir = self.emu.dirs.folder(kind)
        subfolder = str(post.get("subfolder", ""))
        filename = image.filename
        folder = os.path.join(upload_dir, os.path.normpath(subfolder))
        target = os.path.abspath(os.path.join(folder, filename))
        if not inside(upload_dir, target):
            return web.Response(status=400)
        os.makedirs(folder, exist_ok=True)
        content = image.file.read()
        overwrite = str(post.get("overwrite", "")).lower() in ("true", "1")
        stem, ext = os.path.splitext(filename)
        counter = 1
        duplicate = False
        while not overwrite and os.path.exists(target):
            if _sha256(Path(target)) == hashlib.sha256(content).hexdigest():
                duplicate = True
                break
            filename = f"{stem} ({counter}){ext}"
            target = os.path.join(folder, filename)
            counter += 1
        if not duplicate:
            Path(target).write_bytes(content if written is None else written)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})

    async def upload_image(self, request: web.Request) -> web.Response:
        return await self._store(await request.post())

    async def upload_mask(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, FileField) or not image.filename:
            return web.Response(status=400)
        try:
            ref = json.loads(str(post["original_ref"]))
        except (KeyError, ValueError):
            return internal_error()
        mask_bytes = image.file.read()
        image.file.seek(0)
        try:
            merged = self._merge_mask(ref, mask_bytes)
        except ValueError:  # a mask of another size: ComfyUI fails with a plain 500
            return internal_error()
        if merged is None:
            # ComfyUI discards its own error response here and still answers success.
            kind = post.get("type") or "input"
            subfolder = str(post.get("subfolder", ""))
            return web.json_response({"name": image.filename, "subfolder": subfolder, "type": kind})
        return await self._store(post, merged)

    def _merge_mask(self, ref: dict[str, Any], mask_bytes: bytes) -> bytes | None:
        filename, kind = split_annotation(str(ref.get("filename", "")), ref.get("type", "output"))
        if not filename or filename.startswith("/") or ".." in filename or kind not in FOLDER_TYPES:
            return None
        try:
            folder = join_subfolder(self.emu.dirs.folder(kind), str(ref.get("subfolder", "")))
        except PathEscapeError:
            return None
        original_path = folder / os.path.basename(filename)
        if not original_path.is_file():
            return None
        return masked(original_path, mask_bytes)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
