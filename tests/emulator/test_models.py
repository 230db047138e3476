"""Per-instance node sets and model lists, and the VRAM model cache (LRU)."""

from __future__ import annotations

import argparse
from typing import Any

from balancer.emulator.cli import add_emulator_arguments, options_from_args

from .conftest import ClientFactory
from .emu_helpers import emulator_of, run_prompt, workflow


def txt2img(checkpoint: str, lora: str | None = None) -> dict[str, Any]:
    wf = workflow("txt2img.json")
    wf["4"]["inputs"]["ckpt_name"] = checkpoint
    wf["5"]["inputs"].update(width=64, height=64)
    wf["3"]["inputs"]["steps"] = 2
    if lora is not None:
        wf["10"] = {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["4", 0],
                "clip": ["4", 1],
                "lora_name": lora,
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        }
        wf["3"]["inputs"]["model"] = ["10", 0]
    return wf


async def test_node_set_and_model_lists_are_per_instance(make_client: ClientFactory) -> None:
    client = await make_client(
        without_nodes=frozenset({"ImageInvert"}),
        extra_nodes=("SharpenPlus",),
        models={"loras": ("detail.safetensors",), "checkpoints": ("flux.safetensors",)},
    )
    info = await (await client.get("/object_info")).json()
    assert "ImageInvert" not in info and "SharpenPlus" in info
    assert info["LoraLoader"]["input"]["required"]["lora_name"][0] == ["detail.safetensors"]
    ckpts = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert ckpts == ["flux.safetensors"]
    assert await (await client.get("/models/loras")).json() == ["detail.safetensors"]
    assert await (await client.get("/object_info/ImageInvert")).json() == {}

    missing = workflow("fast.json")
    missing["2"]["class_type"] = "ImageInvert"
    resp = await client.post("/prompt", json={"prompt": missing})
    assert resp.status == 400
    assert "ImageInvert" in (await resp.json())["error"]["message"]

    custom = workflow("fast.json")
    custom["2"]["class_type"] = "SharpenPlus"
    custom["2"]["inputs"] = {"image": custom["2"]["inputs"]["image"]}
    assert (await run_prompt(client, custom))["status"]["status_str"] == "success"

    entry = await run_prompt(client, txt2img("flux.safetensors", "detail.safetensors"))
    assert entry["status"]["status_str"] == "success"
    assert set(emulator_of(client).memory.resident) == {"flux.safetensors", "detail.safetensors"}


async def test_model_cache_evicts_least_recently_used(make_client: ClientFactory) -> None:
    client = await make_client(checkpoints=("a", "b", "c"), model_slots=2)
    memory = emulator_of(client).memory
    for name in ("a", "b", "a"):
        await run_prompt(client, txt2img(name))
    assert memory.loads == 2  # the second "a" was resident
    await run_prompt(client, txt2img("c"))  # evicts "b", the least recently used
    assert list(memory.resident) == ["a", "c"]
    await run_prompt(client, txt2img("b"))
    assert memory.loads == 4 and list(memory.resident) == ["c", "b"]
    state = await (await client.get("/_emulator/state")).json()
    assert state["vram"]["resident_models"] == ["c", "b"]


async def test_free_unloads_every_model(make_client: ClientFactory) -> None:
    client = await make_client(checkpoints=("a", "b"))
    await run_prompt(client, txt2img("a"))
    await run_prompt(client, txt2img("b"))
    memory = emulator_of(client).memory
    assert memory.used() == (
        emulator_of(client).options.vram_base_used
        + 2 * emulator_of(client).options.vram_per_checkpoint
    )
    await client.post("/free", json={"unload_models": True})
    assert list(memory.resident) == []
    await run_prompt(client, txt2img("a"))
    assert memory.loads == 3  # loaded again after /free


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    args = parser.parse_args(
        [
            "--without-nodes",
            "ImageInvert,ImageBlur",
            "--extra-nodes",
            "SharpenPlus",
            "--models",
            "checkpoints=a.safetensors,b.safetensors",
            "--models",
            "loras=c.safetensors",
            "--model-load-time",
            "4.5",
            "--model-slots",
            "2",
        ]
    )
    options = options_from_args(args)
    assert options.without_nodes == {"ImageInvert", "ImageBlur"}
    assert options.extra_nodes == ("SharpenPlus",)
    assert options.models_in("checkpoints") == ("a.safetensors", "b.safetensors")
    assert options.models_in("loras") == ("c.safetensors",)
    assert options.checkpoint_load_time == 4.5 and options.model_slots == 2
