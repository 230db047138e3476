"""How a backend's history entry says its run ended, and the end events it
means for the job's client."""

from __future__ import annotations

from typing import Any, Literal

from balancer.jobs.events import ClientEvents, Phase

RunEnd = Literal["succeeded", "failed", "interrupted"]

# The history status message that ends a run, and the state it means.
END_MESSAGES: dict[str, RunEnd] = {
    "execution_success": "succeeded",
    "execution_error": "failed",
    "execution_interrupted": "interrupted",
}

# The end state of a run, and the phase its job event has.
END_PHASES: dict[RunEnd, Phase] = {
    "succeeded": "completed",
    "failed": "failed",
    "interrupted": "interrupted",
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


def end_events(entry: Any, prompt_id: str, start_untold: bool) -> tuple[ClientEvents, ClientEvents]:
    """The start recorded in a history entry, if `start_untold` (the
    backend's timestamp, for a client never told its run started), and
    its end event then `executing` null: what a replayed end tells
    (replayed.py), the outputs between them."""
    messages = _messages(entry)
    ends = [(kind, data) for kind, data in messages if kind in END_MESSAGES][-1:]
    starts = [(kind, data) for kind, data in messages if kind == "execution_start"][:1]
    null: tuple[str, dict[str, Any]] = ("executing", {"node": None, "prompt_id": prompt_id})
    return tuple(starts if start_untold else ()), (*ends, null)


def _messages(entry: Any) -> list[tuple[str, dict[str, Any]]]:
    """A history entry's status messages that are [type, data] pairs."""
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    return [
        (m[0], m[1])
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, list) and len(m) == 2 and isinstance(m[0], str) and isinstance(m[1], dict)
    ]
