"""Which webhook URL a job uses, and whether it may be called at all: only
hosts on `webhooks.allow` (no open relay into the private network)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from balancer.config.delivery_settings import WebhookSettings


def requested_url(body: Any) -> object:
    """`extra_data.webhook` of a POST /prompt body or a stored request, if any."""
    extra = body.get("extra_data") if isinstance(body, dict) else None
    return extra.get("webhook") if isinstance(extra, dict) else None


def refusal(settings: WebhookSettings, url: object) -> str | None:
    """Why `url` may not be called, or None."""
    if not isinstance(url, str):
        return "extra_data.webhook must be a URL string"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        return "extra_data.webhook is not a valid URL"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "extra_data.webhook is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "extra_data.webhook must be an http(s) URL"
    if parts.hostname.lower() not in settings.allow:
        return f"webhook host {parts.hostname} is not in webhooks.allow"
    if not settings.secret:
        return "webhooks are not configured (webhooks.secret)"
    return None
