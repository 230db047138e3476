"""Model loader nodes (LoRA, VAE, UNet, ControlNet, ...) and the custom image
filters an instance adds with `--extra-nodes`.

A loader costs the model load time the first time its model is used and
nothing while the model stays resident (the VRAM model cache, LRU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .nodes_base import JSON, NODE_OVERHEAD_S, NodeContext, NodeImpl, NodeResult
from .nodes_sd import Model


@dataclass(frozen=True)
class Loaded:
    """An opaque loaded model (VAE, ControlNet, upscaler, ...)."""

    name: str


def _loader(input_name: str, outputs: int, passthrough: tuple[str, ...] = ()) -> NodeImpl:
    """A loader of the model named by `input_name`. With `passthrough` it
    patches linked inputs (a LoRA returns the model and CLIP it was given)."""

    async def run(ctx: NodeContext, inputs: JSON) -> NodeResult:
        name = str(inputs[input_name])
        await ctx.ensure_checkpoint(name)
        await ctx.work(NODE_OVERHEAD_S)
        if passthrough:
            return NodeResult(tuple(inputs[p] for p in passthrough))
        model: Any = Model(name) if input_name in ("ckpt_name", "unet_name") else Loaded(name)
        return NodeResult((model,) * outputs)

    return NodeImpl(run)


MODEL_NODES: dict[str, NodeImpl] = {
    "ImageOnlyCheckpointLoader": _loader("ckpt_name", 3),
    "LoraLoader": _loader("lora_name", 2, ("model", "clip")),
    "LoraLoaderModelOnly": _loader("lora_name", 1, ("model",)),
    "VAELoader": _loader("vae_name", 1),
    "ControlNetLoader": _loader("control_net_name", 1),
    "UNETLoader": _loader("unet_name", 1),
    "UpscaleModelLoader": _loader("model_name", 1),
    "StyleModelLoader": _loader("style_model_name", 1),
    "GLIGENLoader": _loader("gligen_name", 1),
}


async def _image_filter(ctx: NodeContext, inputs: JSON) -> NodeResult:
    await ctx.work(NODE_OVERHEAD_S)
    return NodeResult((inputs["image"],))


def extra_node_impl() -> NodeImpl:
    """A custom node pack's class: an image filter that returns its input."""
    return NodeImpl(_image_filter)


def extra_node_info(class_type: str) -> JSON:
    """The /object_info entry of a `--extra-nodes` class."""
    return {
        "input": {"required": {"image": ["IMAGE"]}},
        "input_order": {"required": ["image"]},
        "output": ["IMAGE"],
        "output_is_list": [False],
        "output_name": ["IMAGE"],
        "name": class_type,
        "display_name": class_type,
        "description": "",
        "python_module": f"custom_nodes.{class_type}",
        "category": "custom",
        "output_node": False,
    }
