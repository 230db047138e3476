"""Where a client fetches a stored output: `public_base_url` + key (a CDN or
a public bucket), or a presigned GET that expires after `presign_ttl`.

URLs are signed when a job ends (for its webhook) and again on every read of
its history, so a client never gets an expired one from `/history`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError

from balancer.config.delivery_settings import OutputSettings
from balancer.logs import get_logger
from balancer.outputs.bucket import Bucket
from balancer.outputs.items import stored_keys

log = get_logger("balancer.outputs")


class Links:
    def __init__(self, settings: OutputSettings, bucket: Bucket) -> None:
        self.settings = settings
        self.bucket = bucket

    async def url(self, key: str) -> str | None:
        """None when no URL can be signed (no credentials): `/view` still serves it."""
        base = self.settings.public_base_url
        if base is not None:
            return f"{base.rstrip('/')}/{quote(key)}"
        try:
            return await self.bucket.presign(key, self.settings.presign_ttl)
        except BotoCoreError as exc:
            log.warning("output_presign_failed", key=key, error=type(exc).__name__)
            return None

    async def fresh(self, entry: Any) -> Any:
        """The entry with a new `url` on every stored item (in place on a copy)."""
        found = list(stored_keys(entry))
        if not found:
            return entry
        urls = {key: await self.url(key) for _, key in found}
        return _replace_urls(entry, urls)


def with_url(item: dict[str, Any], url: str | None) -> dict[str, Any]:
    rest = {k: v for k, v in item.items() if k != "url"}
    return rest if url is None else {**rest, "url": url}


def _replace_urls(entry: dict[str, Any], urls: dict[str, str | None]) -> dict[str, Any]:
    def item(value: Any) -> Any:
        if isinstance(value, dict) and value.get("stored") and value.get("key") in urls:
            return with_url(value, urls[value["key"]])
        return value

    outputs = {
        node: {k: [item(i) for i in v] if isinstance(v, list) else v for k, v in out.items()}
        if isinstance(out, dict)
        else out
        for node, out in entry["outputs"].items()
    }
    return {**entry, "outputs": outputs}
