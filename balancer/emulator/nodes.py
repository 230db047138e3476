"""The registry of node implementations, keyed by ComfyUI class name."""

from __future__ import annotations

from collections.abc import Iterable

from .nodes_base import NodeImpl
from .nodes_image import IMAGE_NODES
from .nodes_models import MODEL_NODES, extra_node_impl
from .nodes_sd import SD_NODES


def default_registry(extra_nodes: Iterable[str] = ()) -> dict[str, NodeImpl]:
    """A fresh class_type -> implementation map (every class in node_info.json
    and node_info_loaders.json, plus `extra_nodes`)."""
    extra = {name: extra_node_impl() for name in extra_nodes}
    return {**IMAGE_NODES, **SD_NODES, **MODEL_NODES, **extra}
