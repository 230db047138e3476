"""A backend's catalogue, reduced to what routing needs: node class names and
the allowed values of every combo input. The 1-5 MB `/object_info` answer
itself is not kept per backend; one definition per class is kept pool-wide
(`Schemas`) for the union routes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Combo options that mark an upload widget: the balancer places those files
# itself, so their lists say nothing about what a backend can run.
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")

ComboKey = tuple[str, str]  # (class_type, input name)


@dataclass(frozen=True)
class Catalogue:
    classes: frozenset[str]
    combos: Mapping[ComboKey, frozenset[str]]
    # Model files per folder (`/models/{folder}`), and `/embeddings`.
    models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    embeddings: tuple[str, ...] = ()

    def offers(self, key: ComboKey, value: str) -> bool:
        """Whether `value` is allowed for that input here (True when the
        input is not a combo on this backend: nothing to check)."""
        allowed = self.combos.get(key)
        return allowed is None or value in allowed


def combo_values(spec: Any) -> list[str] | None:
    """The allowed values of one input spec, or None if it is not a checked
    combo: `[[values...], {...}]` (classic) or `["COMBO", {"options": [...]}]`
    (newer nodes). Upload widgets are not checked."""
    if not isinstance(spec, list) or not spec:
        return None
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if any(options.get(flag) for flag in UPLOAD_FLAGS):
        return None
    if isinstance(spec[0], list):
        values = spec[0]
    elif spec[0] == "COMBO" and isinstance(options.get("options"), list):
        values = options["options"]
    else:
        return None
    return [str(v) for v in values if isinstance(v, str | int | float)]


def input_specs(definition: Any) -> dict[str, Any]:
    """Every input of one /object_info class definition, required and optional."""
    inputs = definition.get("input") if isinstance(definition, dict) else None
    specs: dict[str, Any] = {}
    for category in ("required", "optional"):
        part = inputs.get(category) if isinstance(inputs, dict) else None
        if isinstance(part, dict):
            specs.update(part)
    return specs


def parse_object_info(data: Any) -> tuple[frozenset[str], dict[ComboKey, frozenset[str]]]:
    """Class names and combo value sets of a GET /object_info answer."""
    if not isinstance(data, dict):
        raise ValueError("GET /object_info: not an object")
    combos: dict[ComboKey, frozenset[str]] = {}
    for class_type, definition in data.items():
        for name, spec in input_specs(definition).items():
            values = combo_values(spec)
            if values is not None:
                combos[(class_type, name)] = frozenset(values)
    return frozenset(data), combos
