"""A workflow whose one output is a PNG of random pixels: it does not
compress, so its size is about 3 bytes per pixel (side 4096: 50 MB)."""

from __future__ import annotations

import math
from typing import Any


def side_for(size: int) -> int:
    """The square side whose noise PNG is about `size` bytes."""
    return max(1, math.isqrt(size // 3))


def noise_prompt(side: int, seed: int, prefix: str = "noise") -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": side, "height": side, "batch_size": 1, "color": 0},
        },
        "2": {
            "class_type": "ImageAddNoise",
            "inputs": {"image": ["1", 0], "seed": seed, "strength": 1.0},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }
