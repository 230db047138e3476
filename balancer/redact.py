"""Secrets never reach a log line, a status page or an error: credential
headers, `token=` query values and URL user-info are masked wherever they
would be written (`redact`), and every log event passes `redact_event`."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")
_HEADER = re.compile(
    r"(?i)\b(authorization|proxy-authorization|x-api-key|cookie|set-cookie)(\s*[:=]\s*)[^\r\n'\"]+"
)
_TOKEN = re.compile(r"(?i)([?&;]token=)[^&\s'\"]+")


def redact(text: str) -> str:
    """`text` with URL user-info, credential header values and `token=`
    values masked."""
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    text = _HEADER.sub(rf"\1\2{MASK}", text)
    return _TOKEN.sub(rf"\1{MASK}", text)


def display_url(url: str) -> str:
    """A URL fit to show: its user-info (`user:pass@`) masked."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: every string value of the event, redacted."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
    return event
