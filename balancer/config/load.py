"""YAML -> `Settings`, reporting every mistake in the file at once.

Parsing is driven by the dataclasses in `model.py`: each section is read by
walking its fields and their type hints, so adding a setting is one line
there. Only what the type cannot say lives here: which fields hold sizes or
URLs (`_PARSERS`), value ranges (`_CHECKS`), relations between fields
(`_RELATIONS`) and the backend list with its `defaults:` and uniqueness rules.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import yaml

from balancer.config.access import (
    FieldErrors,
    parse_hosts,
    parse_keys,
    parse_origins,
    parse_webhook_url,
    webhook_relations,
)
from balancer.config.model import (
    AdminSettings,
    AuthSettings,
    BackendSettings,
    CorsSettings,
    LimitSettings,
    ListenSettings,
    ProbeSettings,
    RoutingSettings,
    Settings,
    StoreSettings,
    TimeoutSettings,
    UploadSettings,
    WebhookSettings,
)
from balancer.config.thresholds import parse_threshold, threshold_relation
from balancer.config.units import format_duration, format_size, parse_duration, parse_size

Parser = Callable[[object], Any]
Check = Callable[[Any], "str | None"]


class ConfigError(Exception):
    """All problems found in a config, each `"<path>: <message>"`.

    Collected rather than raised one by one so a single edit fixes them all.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


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


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _between(low: int, high: int) -> Check:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _at_least(low: int) -> Check:
    return lambda value: None if value >= low else f"must be >= {low}"


def _probe_relations(probe: ProbeSettings) -> Iterator[tuple[str, str]]:
    """Load data must be allowed to age past one probe interval, or every
    backend would flap to "stale" between two probes."""
    if probe.stale_after <= probe.interval:
        yield "stale_after", f"must be > probe.interval ({format_duration(probe.interval)})"


# Fields parsed by something other than their Python type (sizes, URLs, names).
_PARSERS: dict[tuple[type, str], Parser] = {
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
    (StoreSettings, "path"): _optional_path,
    (AuthSettings, "keys"): parse_keys,
    (CorsSettings, "origins"): parse_origins,
    (WebhookSettings, "url"): parse_webhook_url,
    (WebhookSettings, "secret"): _token,
    (WebhookSettings, "allow"): parse_hosts,
}

# Range checks applied after parsing.
_CHECKS: dict[tuple[type, str], Check] = {
    (ListenSettings, "port"): _between(1, 65535),
    (ProbeSettings, "interval"): _positive,
    (ProbeSettings, "timeout"): _positive,
    (ProbeSettings, "unhealthy_after"): _at_least(1),
    (ProbeSettings, "healthy_after"): _at_least(1),
    (ProbeSettings, "stale_after"): _positive,
    (LimitSettings, "max_body"): _positive,
    (LimitSettings, "max_upload"): _positive,
    (UploadSettings, "max_age"): _positive,
    (UploadSettings, "max_bytes"): _positive,
    (TimeoutSettings, "connect"): _positive,
    (TimeoutSettings, "request"): _positive,
    (RoutingSettings, "max_queue"): _at_least(1),
    (RoutingSettings, "max_attempts"): _at_least(1),
    (WebhookSettings, "max_attempts"): _at_least(1),
    (WebhookSettings, "timeout"): _positive,
}

# Checks between fields of one section, run only once the section is valid.
_RELATIONS: dict[type, Callable[[Any], Iterator[tuple[str, str]]]] = {
    ProbeSettings: _probe_relations,
    WebhookSettings: webhook_relations,
}

# Backend fields that a top-level `defaults:` mapping may supply.
_BACKEND_IDENTITY = frozenset({"name", "url", "primary"})


# ---- the generic walker ----------------------------------------------------


@cache
def _field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint (model.py uses postponed annotations)."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _describe(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _by_type(hint: Any, value: object) -> object:
    """Parse a YAML scalar as `hint`; bools are never numbers, ints are floats."""
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if any(type(value) is type(c) and value == c for c in choices):
            return value
        raise ValueError(f"must be one of {', '.join(map(str, choices))} (got {value!r})")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"must be true or false (got {_describe(value)})")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"must be an integer (got {_describe(value)})")
    if hint is float:  # every float setting is a time in seconds
        return parse_duration(value)
    if hint is str:
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError(f"must be a non-empty string (got {_describe(value)})")
    raise TypeError(f"config loader cannot parse type {hint!r}")  # a model.py addition


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _mapping(data: object, path: str, errors: list[str]) -> Mapping[Any, Any] | None:
    """`data` as a mapping; an empty YAML section (`listen:`) counts as `{}`."""
    if data is None:
        return {}
    if isinstance(data, Mapping):
        return data
    errors.append(f"{path}: must be a mapping (got {_describe(data)})")
    return None


def _parse_fields(
    cls: type,
    data: object,
    path: str,
    errors: list[str],
    allowed: Collection[str] | None = None,
) -> dict[str, Any] | None:
    """The valid keys of `data` parsed as fields of `cls`; problems go to `errors`.

    Returns None when `data` is not a mapping at all. Invalid keys are left
    out of the result, so callers must compare error counts before building.
    """
    mapping = _mapping(data, path, errors)
    if mapping is None:
        return None
    types = _field_types(cls)
    names = types.keys() if allowed is None else allowed
    parsed: dict[str, Any] = {}
    for key, raw in mapping.items():
        where = _join(path, key)
        if key not in names:
            errors.append(f"{where}: unknown key (allowed: {', '.join(sorted(names))})")
            continue
        parser = _PARSERS.get((cls, key)) or partial(_by_type, types[key])
        try:
            value = parser(raw)
        except FieldErrors as exc:  # several problems inside one field
            errors.extend(f"{where}{sub}: {message}" for sub, message in exc.items)
            continue
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            continue
        check = _CHECKS.get((cls, key))
        problem = check(value) if check else None
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        parsed[key] = value
    return parsed


def _section(cls: type, data: object, path: str, errors: list[str]) -> Any:
    """One settings section with defaults filled in (a placeholder if invalid)."""
    before = len(errors)
    parsed = _parse_fields(cls, data, path, errors)
    if parsed is None or len(errors) > before:
        return cls()  # never returned to callers: parse_settings raises
    section = cls(**parsed)
    for key, problem in _RELATIONS.get(cls, lambda _: iter(()))(section):
        errors.append(f"{_join(path, key)}: {problem}")
    return section


# ---- backends --------------------------------------------------------------


def _backend(
    index: int, data: object, defaults: Mapping[str, Any], errors: list[str]
) -> BackendSettings | None:
    path = f"backends[{index}]"
    before = len(errors)
    parsed = _parse_fields(BackendSettings, data, path, errors)
    if parsed is None:
        return None
    if not (isinstance(data, Mapping) and "url" in data):
        errors.append(f"{path}.url: required")
    if len(errors) > before:
        return None
    backend = BackendSettings(**{"name": f"node{index}", **defaults, **parsed})
    problem = threshold_relation(backend.vram_limit, backend.vram_resume)
    if problem is not None:
        errors.append(f"{path}.{problem[0]}: {problem[1]}")
        return None
    return backend


def _backends(
    data: object, defaults: Mapping[str, Any], errors: list[str]
) -> list[BackendSettings]:
    """The backend list, with duplicate names and extra primaries reported."""
    if data is None or data == []:
        errors.append("backends: at least one backend is required")
        return []
    if not isinstance(data, list):
        errors.append(f"backends: must be a list of backends (got {_describe(data)})")
        return []
    backends: list[BackendSettings] = []
    seen: dict[str, int] = {}
    primary: int | None = None
    for index, item in enumerate(data):
        backend = _backend(index, item, defaults, errors)
        if backend is None:
            continue
        if backend.name in seen:
            errors.append(
                f"backends[{index}].name: duplicate name {backend.name!r}"
                f" (also backends[{seen[backend.name]}])"
            )
        seen.setdefault(backend.name, index)
        if backend.primary and primary is not None:
            errors.append(
                f"backends[{index}].primary: only one backend may be primary"
                f" (backends[{primary}] already is)"
            )
        elif backend.primary:
            primary = index
        backends.append(backend)
    return backends


# ---- public API ------------------------------------------------------------


def parse_settings(data: object) -> Settings:
    """Validate a whole parsed YAML document; raise ConfigError with every problem."""
    errors: list[str] = []
    doc = _mapping(data, "(document)", errors)
    if doc is None:
        raise ConfigError(errors)
    types = _field_types(Settings)
    for key in doc:
        if key not in types and key != "defaults":
            allowed = ", ".join(sorted([*types, "defaults"]))
            errors.append(f"{key}: unknown key (allowed: {allowed})")
    defaultable = _field_types(BackendSettings).keys() - _BACKEND_IDENTITY
    defaults = _parse_fields(BackendSettings, doc.get("defaults"), "defaults", errors, defaultable)
    backends = _backends(doc.get("backends"), defaults or {}, errors)
    sections = {
        name: _section(hint, doc.get(name), name, errors)
        for name, hint in types.items()
        if isinstance(hint, type) and dataclasses.is_dataclass(hint)
    }
    scalar_keys = [k for k, hint in types.items() if hint is str and k in doc]
    scalars = _parse_fields(Settings, {k: doc[k] for k in scalar_keys}, "", errors) or {}
    if errors:
        raise ConfigError(errors)
    return Settings(backends=tuple(backends), **sections, **scalars)


def parse_backend(data: object) -> BackendSettings:
    """One backend on its own (the admin API's POST body), without `defaults`;
    raise ConfigError with every problem."""
    errors: list[str] = []
    backend = _backend(0, data, {}, errors)
    if isinstance(data, Mapping) and "name" not in data:
        errors.append("backends[0].name: required")
    if errors or backend is None:
        raise ConfigError(errors)
    return backend


def load_settings(path: str | Path) -> Settings:
    """Read and validate a YAML config file; unreadable or malformed files are
    ConfigErrors too, so callers handle one exception type."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from None
    return parse_settings(data)


def _summary(settings: Settings) -> str:
    """What an operator wants to eyeball before starting: where, to whom, how often."""
    host = settings.listen.host
    host = f"[{host}]" if ":" in host else host
    lines = [f"listen: {host}:{settings.listen.port}", f"backends: {len(settings.backends)}"]
    width = max(len(b.name) for b in settings.backends)
    for b in settings.backends:
        role = "primary" if b.primary else "-"
        lines.append(
            f"  {b.name:<{width}}  {b.url}  {role}  min_free_vram={format_size(b.min_free_vram)}"
        )
    probe = settings.probe
    lines.append(
        f"probe: every {format_duration(probe.interval)},"
        f" timeout {format_duration(probe.timeout)},"
        f" stale after {format_duration(probe.stale_after)}"
    )
    return "\n".join(lines)


def check_config(path: str | Path) -> tuple[int, str]:
    """Exit code and text for `--check-config`: errors one per line, or a summary."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return 1, "\n".join(exc.errors)
    return 0, f"config OK: {path}\n{_summary(settings)}"
