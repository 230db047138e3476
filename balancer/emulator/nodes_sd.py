"""Simulated txt2img nodes: checkpoint loading with VRAM accounting, a stepping sampler."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import images
from .nodes_base import JSON, NODE_OVERHEAD_S, NodeContext, NodeImpl, NodeResult, megapixels

CLIP_ENCODE_S = 0.02
VAE_DECODE_S_PER_MP = 0.1


@dataclass(frozen=True)
class Model:
    checkpoint: str


@dataclass(frozen=True)
class Conditioning:
    text: str


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch: int
    seed: int | None = None


async def checkpoint_loader(ctx: NodeContext, inputs: JSON) -> NodeResult:
    name = inputs["ckpt_name"]
    await ctx.ensure_checkpoint(name)
    await ctx.work(NODE_OVERHEAD_S)
    model = Model(name)
    return NodeResult((model, model, model))


async def clip_text_encode(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await ctx.work(CLIP_ENCODE_S)
    return NodeResult((Conditioning(inputs["text"]),))


async def empty_latent(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await ctx.work(NODE_OVERHEAD_S)
    return NodeResult((Latent(inputs["width"], inputs["height"], inputs["batch_size"]),))


def _mix_seed(seed: int, *texts: str) -> int:
    digest = hashlib.sha256("\x00".join((str(seed), *texts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


async def ksampler(ctx: NodeContext, inputs: JSON) -> NodeResult:
    model: Model = inputs["model"]
    latent: Latent = inputs["latent_image"]
    await ctx.ensure_checkpoint(model.checkpoint)
    steps = int(inputs["steps"])
    for step in range(1, steps + 1):
        ctx.check_interrupt()
        await ctx.work(ctx.options.step_time)
        await ctx.progress(step, steps)
    texts = (inputs["positive"].text, inputs["negative"].text, model.checkpoint)
    seed = _mix_seed(int(inputs["seed"]), *texts)
    return NodeResult((Latent(latent.width, latent.height, latent.batch, seed),))


def _decode(latent: Latent) -> images.Batch:
    seed = latent.seed if latent.seed is not None else 0
    return [images.synthetic(seed + i, latent.width, latent.height) for i in range(latent.batch)]


async def vae_decode(ctx: NodeContext, inputs: JSON) -> NodeResult:
    latent: Latent = inputs["samples"]
    await ctx.work(VAE_DECODE_S_PER_MP * megapixels(latent.width, latent.height, latent.batch))
    return NodeResult((await ctx.compute(_decode, latent),))


SD_NODES: dict[str, NodeImpl] = {
    "CheckpointLoaderSimple": NodeImpl(checkpoint_loader),
    "CLIPTextEncode": NodeImpl(clip_text_encode),
    "EmptyLatentImage": NodeImpl(empty_latent),
    "KSampler": NodeImpl(ksampler),
    "VAEDecode": NodeImpl(vae_decode),
}
