"""Pixel work the balancer does itself, with Pillow, as ComfyUI does it.

`apply_mask` is ComfyUI's /upload/mask: the original's PNG text chunks (the
workflow) are kept, it is converted to RGBA, its alpha replaced by the mask's
alpha, and it is saved as PNG at compress level 4. `variant` is /view's
`preview=` and `channel=` re-encoding.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo


def apply_mask(original: Path, mask: Path | bytes) -> bytes:
    with Image.open(original) as opened:
        opened.load()
        text = {str(k): v for k, v in opened.info.items() if isinstance(v, str)}
        rgba = opened.convert("RGBA")
    with Image.open(io.BytesIO(mask) if isinstance(mask, bytes) else mask) as mask_image:
        alpha = mask_image.convert("RGBA").getchannel("A")
    if alpha.size != rgba.size:
        # ComfyUI fails with a 500 here; the route answers 400 (README, differences)
        raise ValueError(
            f"the mask is {alpha.size[0]}x{alpha.size[1]}, the original "
            f"{rgba.size[0]}x{rgba.size[1]}"
        )
    rgba.putalpha(alpha)
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def variant(path: Path, preview: str | None, channel: str) -> tuple[bytes, str]:
    """Re-encode for `?preview=fmt;quality` or `?channel=rgb|a`: (bytes, content type)."""
    with Image.open(path) as opened:
        opened.load()
        img: Image.Image = opened
    buffer = io.BytesIO()
    if preview:
        parts = preview.split(";")
        fmt = parts[0] if parts[0] in ("webp", "jpeg") else "webp"
        fmt = "webp" if "a" in channel else fmt
        quality = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 90
        if fmt == "jpeg" or channel == "rgb":
            img = img.convert("RGB")
        img.save(buffer, format=fmt.upper(), quality=quality)
        return buffer.getvalue(), f"image/{fmt}"
    if channel == "rgb":
        img.convert("RGB").save(buffer, format="PNG")
    else:
        alpha = img.convert("RGBA").getchannel("A")
        Image.merge("RGBA", (alpha, alpha, alpha, alpha)).save(buffer, format="PNG")
    return buffer.getvalue(), "image/png"
