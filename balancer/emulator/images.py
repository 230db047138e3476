"""Pixel work with Pillow. An IMAGE is a list of RGB images, a MASK a list of L images."""

from __future__ import annotations

import io
import json
import random
from typing import Any

from PIL import Image, ImageChops, ImageFilter, ImageOps
from PIL.PngImagePlugin import PngInfo

Batch = list[Image.Image]

RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def rgb_of(color: int) -> tuple[int, int, int]:
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def empty(width: int, height: int, batch: int, color: int) -> Batch:
    image = Image.new("RGB", (width, height), rgb_of(color))
    return [image.copy() for _ in range(batch)]


def batch_megapixels(batch: Batch) -> float:
    return sum(img.width * img.height for img in batch) / 1_000_000


def invert(batch: Batch) -> Batch:
    return [ImageOps.invert(img.convert("RGB")) for img in batch]


def blur(batch: Batch, radius: int, sigma: float) -> Batch:
    del radius  # Pillow derives the kernel from sigma
    return [img.filter(ImageFilter.GaussianBlur(sigma)) for img in batch]


def sharpen(batch: Batch, radius: int, sigma: float, alpha: float) -> Batch:
    del radius
    return [img.filter(ImageFilter.UnsharpMask(sigma, int(alpha * 100), 0)) for img in batch]


def _fit(img: Image.Image, width: int, height: int) -> tuple[int, int]:
    if width == 0 and height == 0:
        return img.width, img.height
    if width == 0:
        return max(1, round(img.width * height / img.height)), height
    if height == 0:
        return width, max(1, round(img.height * width / img.width))
    return width, height


def scale(batch: Batch, method: str, width: int, height: int, crop: str) -> Batch:
    out = []
    for img in batch:
        size = _fit(img, width, height)
        if crop == "center":
            out.append(ImageOps.fit(img, size, RESAMPLE[method]))
        else:
            out.append(img.resize(size, RESAMPLE[method]))
    return out


def scale_by(batch: Batch, method: str, factor: float) -> Batch:
    return [
        img.resize(
            (max(1, round(img.width * factor)), max(1, round(img.height * factor))),
            RESAMPLE[method],
        )
        for img in batch
    ]


def add_noise(batch: Batch, seed: int, strength: float) -> Batch:
    rng = random.Random(seed)
    out = []
    for img in batch:
        noise = Image.frombytes("RGB", img.size, rng.randbytes(img.width * img.height * 3))
        out.append(Image.blend(img, noise, strength))
    return out


def split_image_and_mask(img: Image.Image) -> tuple[Image.Image, Image.Image]:
    """LoadImage: RGB image, and mask = 1 - alpha (64x64 zeros when there is no alpha)."""
    if "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info):
        alpha = img.convert("RGBA").getchannel("A")
        return img.convert("RGB"), ImageChops.invert(alpha)
    return img.convert("RGB"), Image.new("L", (64, 64), 0)


def channel_mask(img: Image.Image, channel: str) -> Image.Image:
    """LoadImageMask: one channel as a mask; alpha is inverted like ComfyUI does."""
    bands = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}
    band = bands[channel]
    if band == "A":
        if "A" not in img.convert("RGBA").getbands() or img.mode not in ("RGBA", "LA", "P"):
            return Image.new("L", (64, 64), 0)
        return ImageChops.invert(img.convert("RGBA").getchannel("A"))
    return img.convert("RGB").getchannel(band)


def image_to_mask(batch: Batch, channel: str) -> Batch:
    """ImageToMask: IMAGE tensors have 3 channels, so 'alpha' fails like torch indexing does."""
    index = ["red", "green", "blue", "alpha"].index(channel)
    if index >= 3:
        raise IndexError("index 3 is out of bounds for dimension 3 with size 3")
    return [img.getchannel("RGB"[index]) for img in batch]


def mask_to_image(batch: Batch) -> Batch:
    return [mask.convert("RGB") for mask in batch]


def synthetic(seed: int, width: int, height: int) -> Image.Image:
    """A deterministic picture for a (seed, size): smooth blobs from an 8x8 random grid."""
    rng = random.Random(seed)
    grid = Image.frombytes("RGB", (8, 8), rng.randbytes(8 * 8 * 3))
    return grid.resize((width, height), Image.Resampling.BICUBIC)


def png_bytes(img: Image.Image, text: dict[str, Any] | None = None, level: int = 4) -> bytes:
    info = None
    if text:
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, json.dumps(value))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", pnginfo=info, compress_level=level)
    return buffer.getvalue()


def describe(value: Any) -> str:
    """A short printable form of a node input, for execution_error.current_inputs."""
    if isinstance(value, list) and value and isinstance(value[0], Image.Image):
        first = value[0]
        return (
            f"tensor(shape=[{len(value)}, {first.height}, {first.width}, {len(first.getbands())}])"
        )
    return str(value)
