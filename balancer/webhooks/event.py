"""The JSON a webhook receives, built from the kept history entry."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from balancer.auth.owners import file_items, item_ref
from balancer.jobs.events import JobEvent

SIGNATURE_HEADER = "X-Balancer-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def outputs(entry: Any, base_url: str) -> list[dict[str, Any]]:
    """Every output file with an absolute URL: the bucket's (with its `key`)
    when the output sink stored it, else the balancer's /view."""
    found = entry.get("outputs") if isinstance(entry, dict) else None
    out: list[dict[str, Any]] = []
    for node, node_output in found.items() if isinstance(found, dict) else []:
        for item in file_items(node_output):
            kind, subfolder, filename = item_ref(item)
            query = urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
            one = {"node": node, "filename": filename, "subfolder": subfolder, "type": kind}
            one["url"] = f"{base_url.rstrip('/')}/view?{query}"
            one.update({k: item[k] for k in ("url", "key", "stored") if k in item})
            out.append(one)
    return out


def error(entry: Any) -> dict[str, Any] | None:
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error":
            data = message[1] if isinstance(message[1], dict) else {}
            return {
                "type": data.get("exception_type"),
                "message": data.get("exception_message"),
                "node_id": data.get("node_id"),
            }
    return None


def build(event: JobEvent, entry: Any, base_url: str) -> dict[str, Any]:
    return {
        "prompt_id": event.prompt_id,
        "status": event.phase,
        "outputs": outputs(entry, base_url),
        "error": error(entry) or ({"type": event.detail} if event.detail else None),
        "timings": {"queue_wait_s": event.queue_wait, "run_s": event.run_time},
    }
