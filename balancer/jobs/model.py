"""How a backend's history entry says its run ended."""

from __future__ import annotations

from typing import Any, Literal

RunEnd = Literal["succeeded", "failed", "interrupted"]

# The history status message that ends a run, and the state it means.
END_MESSAGES: dict[str, RunEnd] = {
    "execution_success": "succeeded",
    "execution_error": "failed",
    "execution_interrupted": "interrupted",
}


def end_state(entry: Any) -> RunEnd:
    """What a history entry says about how its run ended."""
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, list) and message and message[0] in END_MESSAGES:
            return END_MESSAGES[message[0]]
    ok = isinstance(status, dict) and status.get("status_str") == "success"
    return "succeeded" if ok else "failed"
