"""Parsing JSON a client sent. Besides malformed text, a body nested deeper
than any workflow (10k `[`), or a string holding a lone surrogate (`"\\ud800"`,
which no UTF-8 writer can encode later), is refused here as a ValueError, so
every route answers such a mistake with a 4xx instead of failing later."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 128
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # \ud800 to \udfff, as JSON escapes them


class BadJson(ValueError):
    pass


def parse(raw: str | bytes) -> Any:
    """The parsed value; BadJson for anything a later step could not handle."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadJson("JSON nested too deeply") from None
    if not _plainly_fine(raw):
        check(data)
    return data


def _plainly_fine(raw: str | bytes) -> bool:
    """True when ASCII `raw` can hold neither: no more than MAX_DEPTH `[`
    and `{` in all, and no escape of a surrogate (in ASCII text the only way
    to write one). A workflow's body usually is, and is then not walked."""
    if not isinstance(raw, bytes) or not raw.isascii():
        return False
    return raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH and not _SURROGATE_ESCAPE.search(raw)


def check(data: Any) -> None:
    """BadJson when `data` nests deeper than MAX_DEPTH or holds a lone surrogate."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise BadJson("a string holds a lone surrogate")
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise BadJson(f"JSON nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((k, depth) for k, _ in items if isinstance(k, str))
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
