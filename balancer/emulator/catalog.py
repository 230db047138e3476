"""Node definitions as ComfyUI 0.3.64 reports them (recorded), with per-instance lists."""

from __future__ import annotations

import copy
import json
import mimetypes
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

from .nodes_models import extra_node_info
from .options import EmulatorOptions

NODE_INFO_FILE = Path(__file__).with_name("node_info.json")
# The model loaders the web UI's model library expects to exist (written from
# ComfyUI 0.3.64's node definitions, not recorded). Their model lists are empty,
# so a prompt using one fails validation as on a server without those files.
LOADERS_FILE = Path(__file__).with_name("node_info_loaders.json")

MODEL_FOLDERS = (
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
    "custom_nodes",
)


@cache
def _recorded_node_info() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(NODE_INFO_FILE.read_text(encoding="utf-8"))
    data.update(json.loads(LOADERS_FILE.read_text(encoding="utf-8")))
    return data


def input_image_files(input_dir: Path) -> list[str]:
    """Top-level image files of input/, sorted, as LoadImage's combo lists them."""
    if not input_dir.is_dir():
        return []
    names = []
    for entry in input_dir.iterdir():
        kind = mimetypes.guess_type(entry.name)[0] or ""
        if entry.is_file() and kind.startswith("image/"):
            names.append(entry.name)
    return sorted(names)


# (class, input) -> the model folder its combo lists.
MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("VAELoader", "vae_name"): "vae",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("GLIGENLoader", "gligen_name"): "gligen",
}


class Catalog:
    """Answers INPUT_TYPES-like questions for this instance: its node classes
    (recorded, minus `without_nodes`, plus `extra_nodes`), input/ files and
    model lists per folder."""

    def __init__(self, input_dir: Path, options: EmulatorOptions) -> None:
        self._input_dir = input_dir
        self._options = options
        definitions = dict(_recorded_node_info())
        definitions.update({name: extra_node_info(name) for name in options.extra_nodes})
        self._definitions = {
            name: info for name, info in definitions.items() if name not in options.without_nodes
        }
        # (class, input) -> the combo list this instance offers, computed on each request
        self._dynamic_lists: dict[tuple[str, str], Callable[[], list[str]]] = {
            ("LoadImage", "image"): lambda: input_image_files(self._input_dir),
            ("LoadImageMask", "image"): lambda: input_image_files(self._input_dir),
        }
        for key, folder in MODEL_INPUTS.items():
            self._dynamic_lists[key] = partial(self.models_in, folder)

    def models_in(self, folder: str) -> list[str]:
        return list(self._options.models_in(folder))

    def class_names(self) -> list[str]:
        return list(self._definitions)

    def has(self, class_type: Any) -> bool:
        return isinstance(class_type, str) and class_type in self._definitions

    def info(self, class_type: str) -> dict[str, Any]:
        info: dict[str, Any] = copy.deepcopy(self._definitions[class_type])
        required = info["input"]["required"]
        for (owner, name), listing in self._dynamic_lists.items():
            if owner == class_type:
                required[name][0] = listing()
        return info

    def all_info(self) -> dict[str, Any]:
        return {name: self.info(name) for name in self.class_names()}

    def input_types(self, class_type: str) -> dict[str, dict[str, list[Any]]]:
        inputs = self.info(class_type)["input"]
        return {category: dict(specs) for category, specs in inputs.items()}

    def return_types(self, class_type: str) -> list[str]:
        return list(self._definitions[class_type]["output"])

    def is_output_node(self, class_type: str) -> bool:
        return bool(self._definitions[class_type]["output_node"])

    def display_name(self, class_type: str) -> str:
        return str(self._definitions[class_type].get("display_name") or class_type)
