"""ComfyUI's error shape, so every client that can show a ComfyUI error shows ours.

`{"error": {"type", "message", "details", "extra_info"}, "node_errors": {}}`
is what POST /prompt answers on a validation failure; the balancer uses the
same shape for everything it refuses itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from balancer.logs import get_logger
from balancer.redact import redact
from balancer.store.model import StoreUnavailable

log = get_logger("balancer.app")


def error_body(type_: str, message: str, details: str = "") -> dict[str, Any]:
    """Message and details are redacted: an upstream error's text may name a
    URL with its password, or echo a header."""
    message, details = redact(message), redact(details)
    return {
        "error": {"type": type_, "message": message, "details": details, "extra_info": {}},
        "node_errors": {},
    }


# Seconds a client is asked to wait when the store cannot answer.
STORE_RETRY_AFTER = 1


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


def store_unavailable(details: str) -> web.Response:
    """503 for a request the store could not answer: nothing was accepted,
    and the same request may be sent again after `Retry-After`."""
    return error_response(
        503,
        "store_unavailable",
        "The balancer's store is unavailable",
        details,
        {"Retry-After": str(STORE_RETRY_AFTER)},
    )


def too_large(limit: int) -> web.Response:
    return error_response(
        413, "request_too_large", "Request body too large", f"the limit is {limit} bytes"
    )


def unhandled(request: web.Request, exc: Exception) -> web.Response:
    """The answer to anything a handler raised that is not an HTTP answer: a
    503 when the store cannot answer, else a 500 with the traceback in
    `unhandled_error`. Called in the `except` block that caught `exc`."""
    if isinstance(exc, StoreUnavailable):
        log.warning("store_unavailable", method=request.method, path=request.path, error=str(exc))
        return store_unavailable(str(exc))
    log.exception("unhandled_error", method=request.method, path=request.path)
    return error_response(500, "internal_error", "Internal balancer error")
