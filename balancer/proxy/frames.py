"""Binary WebSocket frames (comfyui-api.md 8.4): parse, and convert the
metadata preview (type 4) to the legacy one (type 1) for clients that did not
ask for metadata."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

PREVIEW_IMAGE = 1
PREVIEW_WITH_METADATA = 4
FORMAT_BY_MIME = {"image/jpeg": 1, "image/png": 2}


@dataclass(frozen=True)
class MetadataPreview:
    metadata: dict[str, Any]
    image: bytes

    @property
    def prompt_id(self) -> str | None:
        value = self.metadata.get("prompt_id")
        return value if isinstance(value, str) else None

    def as_legacy(self) -> bytes:
        fmt = FORMAT_BY_MIME.get(str(self.metadata.get("image_type")), 2)
        return struct.pack(">II", PREVIEW_IMAGE, fmt) + self.image


def frame_type(frame: bytes) -> int | None:
    return struct.unpack_from(">I", frame)[0] if len(frame) >= 4 else None


def parse_metadata_preview(frame: bytes) -> MetadataPreview | None:
    """A type-4 frame's metadata and image, or None if it is malformed."""
    if len(frame) < 8 or frame_type(frame) != PREVIEW_WITH_METADATA:
        return None
    (length,) = struct.unpack_from(">I", frame, 4)
    try:
        metadata = json.loads(frame[8 : 8 + length])
    except ValueError:
        return None
    if not isinstance(metadata, dict):
        return None
    return MetadataPreview(metadata, frame[8 + length :])
