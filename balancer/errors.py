"""ComfyUI's error shape, so every client that can show a ComfyUI error shows ours.

`{"error": {"type", "message", "details", "extra_info"}, "node_errors": {}}`
is what POST /prompt answers on a validation failure; the balancer uses the
same shape for everything it refuses itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from balancer.redact import redact


def error_body(type_: str, message: str, details: str = "") -> dict[str, Any]:
    """Message and details are redacted: an upstream error's text may name a
    URL with its password, or echo a header."""
    message, details = redact(message), redact(details)
    return {
        "error": {"type": type_, "message": message, "details": details, "extra_info": {}},
        "node_errors": {},
    }


def error_response(
    status: int,
    type_: str,
    message: str,
    details: str = "",
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON error in ComfyUI's shape with the given HTTP status."""
    return web.json_response(
        error_body(type_, message, details), status=status, headers=dict(headers or {})
    )
