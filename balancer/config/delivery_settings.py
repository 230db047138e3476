"""Settings of where finished jobs' results go: completion webhooks and copies of
outputs in object storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class WebhookSettings:
    """Completion callbacks (balancer.webhooks)."""

    # Default URL when a job carries no `extra_data.webhook`.
    url: str | None = None
    # HMAC-SHA256 key for `X-Balancer-Signature`.
    secret: str | None = field(default=None, repr=False)
    # Hosts webhooks may be sent to; anything else is refused.
    allow: tuple[str, ...] = ()
    max_attempts: int = 5
    timeout: float = 10.0


@dataclass(frozen=True)
class OutputSettings:
    """Copies of finished jobs' outputs in object storage (balancer.outputs).
    Credentials come from the standard AWS chain (environment, profile, role),
    never from this file."""

    sink: Literal["none", "s3"] = "none"
    bucket: str = ""
    # Keys are `{prefix}/{tenant}/{prompt_id}/{node_id}/{filename}`.
    prefix: str = "outputs"
    # Any S3-compatible store (R2, MinIO, GCS interoperability); null: AWS.
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing: Literal["path", "virtual"] = "virtual"
    presign_ttl: float = 3600.0
    # A CDN or public bucket: `url` is this + "/" + key instead of a signed URL.
    public_base_url: str | None = None
    include_temp: bool = False
    # Hold a job's end until its copies are done (or failed after retries).
    wait: bool = True
    # GET /view of a stored output: stream it from the bucket, or 302 to a signed URL.
    view: Literal["stream", "redirect"] = "stream"
    # Delete a job's objects this long after its end; null: keep them.
    delete_after: float | None = None
    # Tries per file before it is given up (`stored: false`); the wait after
    # the first failed try, doubled after each one.
    max_attempts: int = 5
    retry_delay: float = 0.5
