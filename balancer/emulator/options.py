"""Emulator settings: one frozen dataclass, plus a parser for byte sizes like "24GiB"."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CHECKPOINTS = (
    "sd_xl_base_1.0.safetensors",
    "v1-5-pruned-emaonly.safetensors",
    "v1-5-pruned-emaonly-fp16.safetensors",
)


@dataclass(frozen=True)
class EmulatorOptions:
    name: str = "emulator"
    base_dir: Path | None = None
    time_scale: float = 1.0
    vram_total: int = 24 * 1024**3
    vram_base_used: int = 512 * 1024**2
    vram_per_checkpoint: int = 6 * 1024**3
    checkpoints: tuple[str, ...] = DEFAULT_CHECKPOINTS
    # Simulated seconds to load a model that is not resident (CLI: --model-load-time).
    checkpoint_load_time: float = 2.0
    step_time: float = 0.05
    max_upload_size: int = 100 * 1024**2
    device_name: str = "cuda:0 Emulated GPU : cudaMallocAsync"
    # Node classes this instance lacks, and custom image-filter classes it adds.
    without_nodes: frozenset[str] = frozenset()
    extra_nodes: tuple[str, ...] = ()
    # Model files per folder ("loras", "vae", ...); `checkpoints` above is the
    # "checkpoints" folder unless this names it too.
    models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Models resident in emulated VRAM at once; the least recently used goes first.
    model_slots: int = 3
    # Seconds each GET /object_info holds the event loop (a blocking sleep, no
    # CPU), as real ComfyUI does while it builds the catalogue: N calls at
    # once take about N times this each, and every other request (probes
    # too) waits behind them. 0.1 with 32 concurrent calls gives the ~3 s per
    # call a real ComfyUI showed (CLI: --object-info-cost).
    object_info_cost: float = 0.0
    # Other GET paths (bare, and under /api) that hold the loop as long: a
    # route a balancer passes through per call, where /object_info is
    # answered from its catalogue (`bench slow`; CLI: --slow-path).
    slow_paths: frozenset[str] = frozenset()

    def models_in(self, folder: str) -> tuple[str, ...]:
        if folder in self.models:
            return self.models[folder]
        return self.checkpoints if folder == "checkpoints" else ()


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def format_size(size: int) -> str:
    """The shortest exact binary form: 25769803776 -> "24GiB"; parse_size reads it back."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size and size % _UNITS[unit.lower()] == 0:
            return f"{size // _UNITS[unit.lower()]}{unit}"
    return str(size)


def parse_size(text: str) -> int:
    """Parse "25769803776", "24GiB", "512MiB" or "1.5GB" into bytes."""
    match = _SIZE_RE.match(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a byte size: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
