"""The pixels of POST /upload/mask and GET /view's re-encodings, as recorded
from ComfyUI 0.3.64 (upload_mask.json): the stored file is the original made
RGBA, with the alpha of the mask (an RGB mask counts as opaque) and the
original's PNG text chunks; a mask of another size is an error (ComfyUI's
`putalpha` raises "images do not match", which the route turns into a 500)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo


def masked(original: Path, mask: bytes) -> bytes:
    """The original with the mask's alpha; ValueError when the sizes differ."""
    with Image.open(original) as source:
        text = {str(k): v for k, v in source.info.items() if isinstance(v, str)}
        picture = source.convert("RGBA")
    with Image.open(io.BytesIO(mask)) as uploaded:
        alpha = uploaded.convert("RGBA").split()[-1]
    if alpha.size != picture.size:
        raise ValueError("images do not match")
    picture.putalpha(alpha)
    chunks = PngInfo()
    for key, value in text.items():
        chunks.add_text(key, value)
    out = io.BytesIO()
    picture.save(out, format="PNG", pnginfo=chunks, compress_level=4)
    return out.getvalue()


def reencoded(path: Path, preview: str | None, channel: str) -> tuple[bytes, str]:
    """GET /view with `preview=webp;90` (or jpeg) or `channel=rgb|a`: the new
    bytes and their content type. `channel=a` is the alpha as a grey RGBA image."""
    with Image.open(path) as source:
        picture = source.convert("RGBA")
    if channel == "rgb":
        picture = picture.convert("RGB")
    elif channel == "a":
        alpha = picture.split()[-1]
        picture = Image.merge("RGBA", (alpha, alpha, alpha, alpha))
    out = io.BytesIO()
    if not preview:
        picture.save(out, format="PNG")
        return out.getvalue(), "image/png"
    fmt, _, quality = preview.partition(";")
    fmt = "webp" if fmt not in ("webp", "jpeg") or channel == "a" else fmt
    if fmt == "jpeg":
        picture = picture.convert("RGB")
    picture.save(out, format=fmt.upper(), quality=int(quality) if quality.isdigit() else 90)
    return out.getvalue(), f"image/{fmt}"
