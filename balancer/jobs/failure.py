"""History entries for jobs that ended without a backend run to show for it:
refused late (a validation error after waiting) or lost too often."""

from __future__ import annotations

import json
from typing import Any

from balancer.store import StoredJob


def rejection_error(body: bytes, status: int) -> tuple[str, str, dict[str, Any]]:
    """(type, message, node_errors) from a backend's refusal of POST /prompt."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    node_errors = data.get("node_errors") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        details = str(error.get("details", ""))
        text = f"{message}: {details}" if details else message
        return str(error.get("type", "rejected")), text, _dict(node_errors)
    return "rejected", f"HTTP {status}: {body[:200].decode(errors='replace')}", _dict(node_errors)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def failed_entry(
    job: StoredJob, type_: str, message: str, node_errors: dict[str, Any], now: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(history entry, execution_error data) in ComfyUI's shapes."""
    stamp = int(now * 1000)
    error: dict[str, Any] = {
        "prompt_id": job.prompt_id,
        "node_id": None,
        "node_type": None,
        "executed": [],
        "exception_message": message,
        "exception_type": type_,
        "traceback": [],
        "current_inputs": {},
        "current_outputs": [],
        "timestamp": stamp,
        "node_errors": node_errors,
    }
    extra = dict(job.request.get("extra_data") or {})
    if job.client_id is not None:
        extra["client_id"] = job.client_id
    prompt: list[Any] = [job.number, job.prompt_id, job.request.get("prompt"), extra, []]
    entry = {
        "prompt": prompt,
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [
                ["execution_start", {"prompt_id": job.prompt_id, "timestamp": stamp}],
                ["execution_error", error],
            ],
        },
        "meta": {},
    }
    return entry, error
