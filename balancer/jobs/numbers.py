"""The pool's `number` where a backend shows its own: every backend numbers
the prompts it queues, and clients see the balancer's number instead (in
the answer to POST /prompt, in history entries, in queue listings)."""

from __future__ import annotations

import json
from typing import Any


def pool_number(body: bytes, number: float) -> bytes:
    """A backend's POST /prompt answer with the balancer's `number`."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    return json.dumps({**data, "number": display_number(number)}).encode()


def display_number(number: float) -> float | int:
    return int(number) if float(number).is_integer() else number


def with_number(entry: Any, number: float) -> Any:
    """A history entry showing the pool's `number` (the backend has its own)."""
    prompt = entry.get("prompt") if isinstance(entry, dict) else None
    if not isinstance(prompt, list) or not prompt:
        return entry
    return {**entry, "prompt": [display_number(number), *prompt[1:]]}
