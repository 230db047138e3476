"""Parsers for the access-control sections: `auth.keys`, `cors.origins`,
`webhooks.*`. Keys are reduced to their SHA-256 here; a raw key never leaves
this module and never appears in an error message.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from balancer.config.access_settings import ApiKey
from balancer.config.delivery_settings import WebhookSettings

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_KEY_FIELDS = frozenset({"name", "key", "sha256", "env", "scope", "rate", "burst", "max_queued"})
_SCOPES = ("client", "admin")


class FieldErrors(ValueError):
    """Several problems inside one field, each `(sub-path, message)`."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, m in items))
        self.items = items


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _number(value: object, where: str, errors: list[tuple[str, str]], *, integer: bool) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer and not isinstance(value, int):
        ok = False
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:  # type: ignore[arg-type]
        kind = "an integer" if integer else "a number"
        errors.append((where, f"must be {kind} > 0"))
        return None
    return value


def _secret(entry: Mapping[Any, Any], where: str, errors: list[tuple[str, str]]) -> bytes | None:
    """The key's digest from exactly one of `key`, `sha256`, `env`."""
    given = [k for k in ("key", "sha256", "env") if k in entry]
    if len(given) != 1:
        errors.append((where, "needs exactly one of key, sha256, env"))
        return None
    kind, value = given[0], entry[given[0]]
    if not isinstance(value, str) or not value.strip():
        errors.append((f"{where}.{kind}", "must be a non-empty string"))
        return None
    if kind == "sha256":
        if not _HEX64.fullmatch(value):
            errors.append((f"{where}.sha256", "must be 64 hex digits"))
            return None
        return bytes.fromhex(value)
    if kind == "env":
        from_env = os.environ.get(value)
        if not from_env:
            errors.append((f"{where}.env", f"environment variable {value} is not set"))
            return None
        return key_digest(from_env)
    return key_digest(value)


def _key(index: int, entry: object, errors: list[tuple[str, str]]) -> ApiKey | None:
    where = f"[{index}]"
    if not isinstance(entry, Mapping):
        errors.append((where, "must be a mapping with name and key, sha256 or env"))
        return None
    before = len(errors)
    for unknown in sorted(str(k) for k in entry.keys() - _KEY_FIELDS):
        errors.append((f"{where}.{unknown}", "unknown key"))
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        errors.append((f"{where}.name", "required: 1-64 characters of A-Z a-z 0-9 _ -"))
    digest = _secret(entry, where, errors)
    scope = entry.get("scope", "client")
    if scope not in _SCOPES:
        errors.append((f"{where}.scope", "must be one of client, admin"))
    elif scope == "client" and name == "default":
        # A client key's user data lives in <data_dir>/user/<name>/, and
        # `default` is the directory admin keys and anonymous callers share.
        errors.append((f"{where}.name", "'default' is reserved for admin keys"))
    limits = {
        field: _number(entry[field], f"{where}.{field}", errors, integer=field != "rate")
        for field in ("rate", "burst", "max_queued")
        if entry.get(field) is not None
    }
    if len(errors) > before or digest is None:
        return None
    return ApiKey(name=str(name), sha256=digest, scope=scope, **limits)


def parse_keys(value: object) -> tuple[ApiKey, ...]:
    """`auth.keys`: every problem reported, each with its index."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("must be a list of keys")
    errors: list[tuple[str, str]] = []
    keys = [k for i, item in enumerate(value) if (k := _key(i, item, errors)) is not None]
    errors += _duplicates(keys)
    if errors:
        raise FieldErrors(errors)
    return tuple(keys)


def _duplicates(keys: list[ApiKey]) -> Iterator[tuple[str, str]]:
    names: set[str] = set()
    digests: set[bytes] = set()
    for index, key in enumerate(keys):
        if key.name in names:
            yield f"[{index}].name", f"duplicate name {key.name!r}"
        if key.sha256 in digests:
            yield f"[{index}]", "the same key is configured twice"
        names.add(key.name)
        digests.add(key.sha256)


def parse_origins(value: object) -> tuple[str, ...]:
    """`cors.origins`: `scheme://host[:port]` each, or `*`."""
    items = _strings(value)
    for item in items:
        parts = urlsplit(item)
        if item != "*" and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(f"not an origin (scheme://host[:port]): {item!r}")
        if item != "*" and (parts.path or parts.query):
            raise ValueError(f"an origin has no path: {item!r}")
    return tuple(i.rstrip("/") for i in items)


MIN_SESSION_SECRET = 16


def parse_session_secret(value: object) -> bytes | None:
    """`auth.session_secret`: null (generated and kept in the data dir) or
    `{env: VAR}`, a variable holding at least 16 characters."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"env"} or not isinstance(value["env"], str):
        raise ValueError("must be {env: VARIABLE} or null")
    secret = os.environ.get(value["env"], "")
    if len(secret) < MIN_SESSION_SECRET:
        raise ValueError(
            f"environment variable {value['env']} must hold at least"
            f" {MIN_SESSION_SECRET} characters"
        )
    return secret.encode()


def parse_networks(value: object) -> tuple[str, ...]:
    """`auth.trusted_proxies`: addresses or networks (`10.0.0.0/8`)."""
    networks = []
    for item in _strings(value):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"not an IP address or network: {item!r}") from None
    return tuple(networks)


def parse_hosts(value: object) -> tuple[str, ...]:
    """`webhooks.allow`: host names (no scheme, no port)."""
    items = _strings(value)
    for item in items:
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", item):
            raise ValueError(f"not a host name: {item!r}")
    return tuple(i.lower() for i in items)


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of strings")
    return list(value)


def parse_webhook_url(value: object) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL or null")
    return str(value)


def webhook_relations(hooks: WebhookSettings) -> Iterator[tuple[str, str]]:
    """A default URL must be allowed; sending anything needs a secret."""
    if hooks.url is not None and (urlsplit(hooks.url).hostname or "") not in hooks.allow:
        yield "url", "its host is not in webhooks.allow"
    if (hooks.url is not None or hooks.allow) and not hooks.secret:
        yield "secret", "required when webhooks are configured"
