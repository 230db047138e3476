"""The registry of node implementations, keyed by ComfyUI class name."""

from __future__ import annotations

from .nodes_base import NodeImpl
from .nodes_image import IMAGE_NODES
from .nodes_sd import SD_NODES


def default_registry() -> dict[str, NodeImpl]:
    """A fresh class_type -> implementation map (every class in node_info.json)."""
    return {**IMAGE_NODES, **SD_NODES}
