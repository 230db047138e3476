"""YAML -> `Settings`, reporting every mistake in the file at once.

Parsing is driven by the dataclasses in `model.py`: each section is read by
walking its fields and their type hints, so adding a setting is one line
there. What the type cannot say is in `rules.py` (which fields hold sizes or
URLs, value ranges, relations between fields); the backend list with its
`defaults:` and uniqueness rules is here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from balancer.config.access import (
    FieldErrors,
)
from balancer.config.model import (
    BackendSettings,
    Settings,
)
from balancer.config.rules import BACKEND_IDENTITY, CHECKS, PARSERS, RELATIONS
from balancer.config.thresholds import threshold_relation
from balancer.config.units import format_duration, format_size, parse_duration


class ConfigError(Exception):
    """All problems found in a config, each `"<path>: <message>"`.

    Collected rather than raised one by one so a single edit fixes them all.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


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
        parser = PARSERS.get((cls, key)) or partial(_by_type, types[key])
        try:
            value = parser(raw)
        except FieldErrors as exc:  # several problems inside one field
            errors.extend(f"{where}{sub}: {message}" for sub, message in exc.items)
            continue
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            continue
        check = CHECKS.get((cls, key))
        problem = check(value) if check else None
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        parsed[key] = value
    return parsed


def _failed(data: object, parsed: Mapping[str, Any], fields: Collection[str]) -> set[str]:
    """Fields `data` gave that did not parse (their errors are already listed)."""
    given = data.keys() if isinstance(data, Mapping) else ()
    return {key for key in given if key in fields and key not in parsed}


def _section(cls: type, data: object, path: str, errors: list[str]) -> Any:
    """One settings section, invalid fields left at their defaults (callers
    raise when `errors` grew). Relations between fields run on whatever
    parsed: an error elsewhere in the section does not hide them, only one in
    a field they compare does."""
    parsed = _parse_fields(cls, data, path, errors)
    if parsed is None:
        return cls()
    section = cls(**parsed)
    relation = RELATIONS.get(cls)
    if relation is not None and not _failed(data, parsed, relation.fields):
        for key, problem in relation.check(section):
            errors.append(f"{_join(path, key)}: {problem}")
    return section


# ---- backends --------------------------------------------------------------


def _backend(
    index: int, data: object, defaults: Mapping[str, Any], errors: list[str]
) -> tuple[BackendSettings, set[str]] | None:
    """One entry with whatever parsed (invalid fields at their defaults), and
    the fields that did not parse, so checks across fields and entries still
    run on the rest. None when the entry is not a mapping."""
    path = f"backends[{index}]"
    parsed = _parse_fields(BackendSettings, data, path, errors)
    if parsed is None:
        return None
    if not (isinstance(data, Mapping) and "url" in data):
        errors.append(f"{path}.url: required")
    failed = _failed(data, parsed, _field_types(BackendSettings))
    backend = BackendSettings(**{"name": f"node{index}", "url": "", **defaults, **parsed})
    if not failed & {"vram_limit", "vram_resume"}:
        problem = threshold_relation(backend.vram_limit, backend.vram_resume)
        if problem is not None:
            errors.append(f"{path}.{problem[0]}: {problem[1]}")
    return backend, failed


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
        entry = _backend(index, item, defaults, errors)
        if entry is None:
            continue
        backend, failed = entry
        backends.append(backend)
        if "name" in failed:
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
    defaultable = _field_types(BackendSettings).keys() - BACKEND_IDENTITY
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
    entry = _backend(0, data, {}, errors)
    if isinstance(data, Mapping) and "name" not in data:
        errors.append("backends[0].name: required")
    if errors or entry is None:
        raise ConfigError(errors)
    return entry[0]


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
