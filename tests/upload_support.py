"""Helpers for upload and placement tests: PNGs, multipart uploads, the
image-to-image workflow, and reading result pixels back through the balancer."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from PIL import Image
from support import Pool, workflow

RGB = tuple[int, int, int]


def png(color: RGB, size: tuple[int, int] = (8, 8), alpha: int | None = None) -> bytes:
    mode = "RGB" if alpha is None else "RGBA"
    fill: tuple[int, ...] = color if alpha is None else (*color, alpha)
    buffer = io.BytesIO()
    Image.new(mode, size, fill).save(buffer, format="PNG")
    return buffer.getvalue()


def pixel(data: bytes, xy: tuple[int, int] = (0, 0)) -> Any:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGBA").getpixel(xy)


def invert(color: RGB) -> RGB:
    r, g, b = color
    return 255 - r, 255 - g, 255 - b


def form(data: bytes, filename: str, quote: bool = True, **fields: str) -> aiohttp.FormData:
    body = aiohttp.FormData(quote_fields=quote)
    body.add_field("image", data, filename=filename, content_type="image/png")
    for key, value in fields.items():
        body.add_field(key, value)
    return body


async def upload(
    client: TestClient,  # type: ignore[type-arg]
    data: bytes,
    filename: str,
    path: str = "/upload/image",
    **fields: str,
) -> tuple[int, Any]:
    resp = await client.post(path, data=form(data, filename, **fields))
    body = await resp.json() if resp.content_type == "application/json" else None
    return resp.status, body


def i2i(image: str, prefix: str = "i2i") -> dict[str, Any]:
    """LoadImage -> ImageInvert -> SaveImage: the output is the input inverted."""
    wf = workflow("upload_loadimage")
    wf["1"]["inputs"]["image"] = image
    wf["3"]["inputs"]["scale_by"] = 1.0
    wf["4"]["inputs"]["filename_prefix"] = prefix
    return wf


async def first_output(pool: Pool, prompt_id: str) -> dict[str, Any]:
    resp = await pool.client.get(f"/history/{prompt_id}")
    entry = (await resp.json())[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    for output in entry["outputs"].values():
        for item in output.get("images", []):
            return dict(item)
    raise AssertionError("no image output")


async def view(pool: Pool, item: dict[str, Any]) -> bytes:
    params = {k: item[k] for k in ("filename", "subfolder", "type")}
    resp = await pool.client.get("/view", params=params)
    assert resp.status == 200, (resp.status, params)
    return await resp.read()
