"""Field rules the settings' type hints cannot express: which fields hold
sizes, URLs or names (`PARSERS`), value ranges (`CHECKS`), relations between
fields of one section (`RELATIONS`). `fields.py` applies them while it walks
the dataclasses; adding a rule is one line in a table here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from balancer.config.access import (
    parse_hosts,
    parse_keys,
    parse_networks,
    parse_origins,
    parse_session_secret,
    parse_webhook_url,
    webhook_relations,
)
from balancer.config.access_settings import AdminSettings, AuthSettings, CorsSettings
from balancer.config.backend_settings import (
    BackendSettings,
    CatalogSettings,
    HealthSettings,
    ProbeSettings,
)
from balancer.config.delivery_settings import OutputSettings, WebhookSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.config.server_settings import LimitSettings, ListenSettings, TimeoutSettings
from balancer.config.storage_settings import (
    HistorySettings,
    ReplicaSettings,
    StoreSettings,
    UploadSettings,
)
from balancer.config.thresholds import parse_threshold
from balancer.config.units import format_duration, parse_duration, parse_size
from balancer.redact import display_url

Parser = Callable[[object], Any]
Check = Callable[[Any], "str | None"]


# ---- field rules that the type hint alone cannot express -------------------

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _http_url(value: object) -> str:
    """A backend base URL; the trailing slash goes so paths can be appended."""
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"not an http(s) URL: bad port in {value!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL (got {value!r})")
    if parts.query or parts.fragment:
        raise ValueError(f"not an http(s) URL: must not have a query or fragment (got {value!r})")
    return text.rstrip("/")


def _optional_name(value: object) -> str:
    """A token-safe name, or empty for the default."""
    return "" if value is None or value == "" else _backend_name(value)


def _optional_http_url(value: object) -> str:
    return "" if value is None or value == "" else _http_url(value)


def _redis_url(value: object) -> str:
    """redis:// or rediss:// with a host and an optional database number.
    Errors show the URL without its password."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ValueError(f"must be a redis:// or rediss:// URL (got {type(value).__name__})")
    shown = display_url(value)
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"must be a redis:// or rediss:// URL with a host (got {shown})")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"bad port in {shown}") from None
    if parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise ValueError(f"the path must be a database number, as /0 (got {shown})")
    return value


def _store_relations(store: StoreSettings) -> Iterator[tuple[str, str]]:
    if store.kind == "redis" and not store.url:
        yield "url", "required when store.kind is redis"
    if store.kind != "redis" and store.url:
        yield "url", "only used when store.kind is redis"


def _backend_name(value: object) -> str:
    """Names appear in logs, metrics and headers, so keep them token-safe."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"must be 1-64 characters of A-Z a-z 0-9 _ - (got {value!r})")
    return value


def _token(value: object) -> str | None:
    """An optional secret: null, or a non-empty string (never echoed in errors)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string or null")
    return value


def _optional_count(value: object) -> int | None:
    """A count >= 0, or null for no limit."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"must be an integer >= 0 or null (got {value!r})")


def _optional_path(value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    raise ValueError(f"must be a path (got {value!r})")


def _optional_duration(value: object) -> float | None:
    return None if value is None else parse_duration(value)


def _optional_url(value: object) -> str | None:
    return None if value is None else _http_url(value)


def _bucket(value: object) -> str:
    """A bucket name, or empty while the sink is off."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and value.strip() == value and "/" not in value:
        return value
    raise ValueError(f"must be a bucket name (got {value!r})")


def _key_prefix(value: object) -> str:
    """An object key prefix: path segments without empty, `.` or `..` parts."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string (got {value!r})")
    parts = [p for p in value.strip("/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"must not contain . or .. segments (got {value!r})")
    return "/".join(parts)


def _output_relations(outputs: OutputSettings) -> Iterator[tuple[str, str]]:
    if outputs.sink == "s3" and not outputs.bucket:
        yield "bucket", "required when outputs.sink is s3"
    if outputs.presign_ttl > 7 * 24 * 3600:
        yield "presign_ttl", "must be at most 168h (the SigV4 limit)"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _positive_or_none(value: float | None) -> str | None:
    return None if value is None else _positive(value)


def _between(low: int, high: int) -> Check:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _at_least(low: int) -> Check:
    return lambda value: None if value >= low else f"must be >= {low}"


def _lease(value: float) -> str | None:
    """A lease is renewed every second: one late renewal must not lose it."""
    return None if value >= 2 else "must be at least 2s (a lease is renewed every second)"


def _probe_relations(probe: ProbeSettings) -> Iterator[tuple[str, str]]:
    """Load data must be allowed to age past one probe interval, or every
    backend would flap to "stale" between two probes."""
    if probe.stale_after <= probe.interval:
        yield "stale_after", f"must be > probe.interval ({format_duration(probe.interval)})"


def _routing_relations(routing: RoutingSettings) -> Iterator[tuple[str, str]]:
    """Only model_affinity scores in seconds, which a job's wait is weighed
    against; another policy would ignore the setting silently."""
    if routing.warm_lookahead and routing.policy != "model_affinity":
        yield "warm_lookahead", f"applies to policy model_affinity only (not {routing.policy})"


# Fields parsed by something other than their Python type (sizes, URLs, names).
PARSERS: dict[tuple[type, str], Parser] = {
    (LimitSettings, "max_body"): parse_size,
    (LimitSettings, "max_upload"): parse_size,
    (UploadSettings, "max_bytes"): parse_size,
    (BackendSettings, "min_free_vram"): parse_size,
    (BackendSettings, "url"): _http_url,
    (BackendSettings, "name"): _backend_name,
    (BackendSettings, "vram_limit"): parse_threshold,
    (BackendSettings, "vram_resume"): parse_threshold,
    (AdminSettings, "token"): _token,
    (RoutingSettings, "max_pending_per_backend"): _optional_count,
    (RoutingSettings, "warm_lookahead"): _optional_count,
    (StoreSettings, "path"): _optional_path,
    (ReplicaSettings, "name"): _optional_name,
    (ReplicaSettings, "advertise"): _optional_http_url,
    (StoreSettings, "url"): _redis_url,
    (AuthSettings, "keys"): parse_keys,
    (AuthSettings, "session_secret"): parse_session_secret,
    (AuthSettings, "trusted_proxies"): parse_networks,
    (CorsSettings, "origins"): parse_origins,
    (WebhookSettings, "url"): parse_webhook_url,
    (WebhookSettings, "secret"): _token,
    (WebhookSettings, "allow"): parse_hosts,
    (OutputSettings, "bucket"): _bucket,
    (OutputSettings, "prefix"): _key_prefix,
    (OutputSettings, "endpoint_url"): _optional_url,
    (OutputSettings, "public_base_url"): _optional_url,
    (OutputSettings, "delete_after"): _optional_duration,
    (HistorySettings, "max_age"): _optional_duration,
}

# Range checks applied after parsing.
CHECKS: dict[tuple[type, str], Check] = {
    (ListenSettings, "port"): _between(1, 65535),
    (ProbeSettings, "interval"): _positive,
    (ProbeSettings, "stats_interval"): _at_least(0),
    (ProbeSettings, "timeout"): _positive,
    (ProbeSettings, "unhealthy_after"): _at_least(1),
    (ProbeSettings, "healthy_after"): _at_least(1),
    (ProbeSettings, "stale_after"): _positive,
    (ProbeSettings, "channel_interval"): _positive,
    (ProbeSettings, "idle_interval"): _positive,
    (HealthSettings, "min_backends_up"): _at_least(1),
    (LimitSettings, "max_body"): _positive,
    (LimitSettings, "max_upload"): _positive,
    (LimitSettings, "header_timeout"): _positive,
    (LimitSettings, "max_connections_per_peer"): _at_least(1),
    (UploadSettings, "max_age"): _positive,
    (UploadSettings, "max_bytes"): _positive,
    (TimeoutSettings, "connect"): _positive,
    (TimeoutSettings, "request"): _positive,
    (RoutingSettings, "max_queue"): _at_least(1),
    (CatalogSettings, "refresh"): _positive,
    (RoutingSettings, "model_load_estimate"): _positive,
    (RoutingSettings, "resident_models"): _at_least(1),
    (RoutingSettings, "max_attempts"): _at_least(1),
    (HistorySettings, "max_items"): _at_least(1),
    (HistorySettings, "max_age"): _positive_or_none,
    (ReplicaSettings, "lease"): _lease,
    (StoreSettings, "timeout"): _positive,
    (RoutingSettings, "failover_grace"): _at_least(0),
    (AuthSettings, "session_ttl"): _positive,
    (WebhookSettings, "max_attempts"): _at_least(1),
    (WebhookSettings, "timeout"): _positive,
    (OutputSettings, "presign_ttl"): _positive,
    (OutputSettings, "max_attempts"): _at_least(1),
    (OutputSettings, "retry_delay"): _positive,
}


@dataclass(frozen=True)
class Relation:
    """A check between `fields` of one section: it runs when those parsed."""

    fields: frozenset[str]
    check: Callable[[Any], Iterator[tuple[str, str]]]


# Checks between fields of one section.
RELATIONS: dict[type, Relation] = {
    ProbeSettings: Relation(frozenset({"interval", "stale_after"}), _probe_relations),
    RoutingSettings: Relation(frozenset({"policy", "warm_lookahead"}), _routing_relations),
    WebhookSettings: Relation(frozenset({"url", "allow", "secret"}), webhook_relations),
    OutputSettings: Relation(frozenset({"sink", "bucket", "presign_ttl"}), _output_relations),
    StoreSettings: Relation(frozenset({"kind", "url"}), _store_relations),
}

# Backend fields that a top-level `defaults:` mapping may supply.
BACKEND_IDENTITY = frozenset({"name", "url", "primary"})
