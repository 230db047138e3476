"""Image nodes that really compute pixels (EmptyImage, ImageBlur, SaveImage, ...)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from PIL import Image

from . import images
from .files import Directories, annotated_input_exists, annotated_input_path, next_save_path
from .files import temp_prefix as make_temp_prefix
from .nodes_base import JSON, NODE_OVERHEAD_S, NodeContext, NodeImpl, NodeResult

# Simulated seconds per megapixel at time_scale 1.0, shaped on a CPU ComfyUI 0.3.64:
# slow.json (1448x1448 blur + sharpen) takes ~3 s, fast.json (64x64) ~5 ms.
COST_PER_MP = {
    "EmptyImage": 0.01,
    "ImageInvert": 0.02,
    "ImageBlur": 0.72,
    "ImageSharpen": 0.72,
    "ImageScale": 0.003,
    "ImageScaleBy": 0.01,
    "ImageAddNoise": 0.02,
    "ImageToMask": 0.01,
    "MaskToImage": 0.01,
    "SaveImage": 0.05,
    "PreviewImage": 0.02,
    "SaveImageWebsocket": 0.01,
}


async def _spend(ctx: NodeContext, kind: str, batch: images.Batch) -> None:
    await ctx.work(NODE_OVERHEAD_S + COST_PER_MP[kind] * images.batch_megapixels(batch))


async def empty_image(ctx: NodeContext, inputs: JSON) -> NodeResult:
    batch = images.empty(inputs["width"], inputs["height"], inputs["batch_size"], inputs["color"])
    await _spend(ctx, "EmptyImage", batch)
    return NodeResult((batch,))


async def image_invert(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await _spend(ctx, "ImageInvert", inputs["image"])
    return NodeResult((await ctx.compute(images.invert, inputs["image"]),))


async def image_blur(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await _spend(ctx, "ImageBlur", inputs["image"])
    args = (inputs["image"], inputs["blur_radius"], inputs["sigma"])
    return NodeResult((await ctx.compute(images.blur, *args),))


async def image_sharpen(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await _spend(ctx, "ImageSharpen", inputs["image"])
    args = (inputs["image"], inputs["sharpen_radius"], inputs["sigma"], inputs["alpha"])
    return NodeResult((await ctx.compute(images.sharpen, *args),))


async def image_scale(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await _spend(ctx, "ImageScale", inputs["image"])
    args = (inputs["image"], inputs["upscale_method"], inputs["width"], inputs["height"])
    return NodeResult((await ctx.compute(images.scale, *args, inputs["crop"]),))


async def image_scale_by(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await _spend(ctx, "ImageScaleBy", inputs["image"])
    args = (inputs["image"], inputs["upscale_method"], inputs["scale_by"])
    return NodeResult((await ctx.compute(images.scale_by, *args),))


async def image_add_noise(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await _spend(ctx, "ImageAddNoise", inputs["image"])
    args = (inputs["image"], inputs["seed"], inputs["strength"])
    return NodeResult((await ctx.compute(images.add_noise, *args),))


async def image_to_mask(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await _spend(ctx, "ImageToMask", inputs["image"])
    return NodeResult((images.image_to_mask(inputs["image"], inputs["channel"]),))


async def mask_to_image(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await _spend(ctx, "MaskToImage", inputs["mask"])
    return NodeResult((images.mask_to_image(inputs["mask"]),))


def _open_input(ctx: NodeContext, name: str) -> Image.Image:
    with Image.open(annotated_input_path(ctx.dirs, name)) as img:
        img.load()
        return img


async def load_image(ctx: NodeContext, inputs: JSON) -> NodeResult:
    img = await ctx.compute(_open_input, ctx, inputs["image"])
    rgb, mask = images.split_image_and_mask(img)
    await ctx.work(NODE_OVERHEAD_S)
    return NodeResult(([rgb], [mask]))


async def load_image_mask(ctx: NodeContext, inputs: JSON) -> NodeResult:
    img = await ctx.compute(_open_input, ctx, inputs["image"])
    await ctx.work(NODE_OVERHEAD_S)
    return NodeResult(([images.channel_mask(img, inputs["channel"])],))


def _write_pngs(
    folder: Path, prefix: str, batch: images.Batch, text: JSON, level: int
) -> list[JSON]:
    directory, subfolder, stem, counter = next_save_path(folder, prefix)
    results = []
    for offset, img in enumerate(batch):
        filename = f"{stem}_{counter + offset:05}_.png"
        (directory / filename).write_bytes(images.png_bytes(img, text, level))
        results.append({"filename": filename, "subfolder": subfolder})
    return results


def _png_text(ctx: NodeContext) -> JSON:
    text: JSON = {"prompt": ctx.prompt}
    pnginfo = ctx.extra_data.get("extra_pnginfo")
    if isinstance(pnginfo, dict):
        text.update(pnginfo)
    return text


async def save_image(ctx: NodeContext, inputs: JSON) -> NodeResult:
    batch = inputs["images"]
    await _spend(ctx, "SaveImage", batch)
    folder = ctx.dirs.folder("output")
    args = (folder, inputs["filename_prefix"], batch, _png_text(ctx), 4)
    saved = await ctx.compute(_write_pngs, *args)
    return NodeResult((), {"images": [{**item, "type": "output"} for item in saved]})


async def preview_image(ctx: NodeContext, inputs: JSON) -> NodeResult:
    batch = inputs["images"]
    await _spend(ctx, "PreviewImage", batch)
    folder = ctx.dirs.folder("temp")
    args = (folder, make_temp_prefix(), batch, _png_text(ctx), 1)
    saved = await ctx.compute(_write_pngs, *args)
    return NodeResult((), {"images": [{**item, "type": "temp"} for item in saved]})


async def save_image_websocket(ctx: NodeContext, inputs: JSON) -> NodeResult:
    batch = inputs["images"]
    await _spend(ctx, "SaveImageWebsocket", batch)
    for step, img in enumerate(batch):
        png = await ctx.compute(images.png_bytes, img, None, 1)
        await ctx.progress(step, len(batch), png)
    return NodeResult((), None)


def _input_file_key(dirs: Directories, inputs: JSON) -> str:
    path = annotated_input_path(dirs, str(inputs.get("image", "")))
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _check_input_file(dirs: Directories, value: Any) -> bool | str:
    if not annotated_input_exists(dirs, str(value)):
        return f"Invalid image file: {value}"
    return True


IMAGE_NODES: dict[str, NodeImpl] = {
    "EmptyImage": NodeImpl(empty_image),
    "ImageInvert": NodeImpl(image_invert),
    "ImageBlur": NodeImpl(image_blur),
    "ImageSharpen": NodeImpl(image_sharpen),
    "ImageScale": NodeImpl(image_scale),
    "ImageScaleBy": NodeImpl(image_scale_by),
    "ImageAddNoise": NodeImpl(image_add_noise),
    "ImageToMask": NodeImpl(image_to_mask),
    "MaskToImage": NodeImpl(mask_to_image),
    "LoadImage": NodeImpl(
        load_image, change_key=_input_file_key, custom_checks={"image": _check_input_file}
    ),
    "LoadImageMask": NodeImpl(
        load_image_mask, change_key=_input_file_key, custom_checks={"image": _check_input_file}
    ),
    "SaveImage": NodeImpl(save_image),
    "PreviewImage": NodeImpl(preview_image),
    "SaveImageWebsocket": NodeImpl(save_image_websocket, never_cached=True),
}
