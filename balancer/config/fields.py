"""Reading one settings section: its fields parsed by their type hints.

Parsing is driven by the dataclasses in the `*_settings` modules: a section
is read by walking its fields and their type hints, so adding a setting is
one line there. What the type cannot say is in `rules.py` (which fields hold
sizes or URLs, value ranges, relations between fields). Problems are
appended to the caller's `errors` list, never raised one by one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from functools import cache, partial
from typing import Any, Literal, get_args, get_origin, get_type_hints

from balancer.config.access import FieldErrors
from balancer.config.rules import CHECKS, PARSERS, RELATIONS
from balancer.config.units import parse_duration


@cache
def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint (the settings use postponed annotations)."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def describe(value: object) -> str:
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
        raise ValueError(f"must be true or false (got {describe(value)})")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"must be an integer (got {describe(value)})")
    if hint is float:  # every float setting is a time in seconds
        return parse_duration(value)
    if hint is str:
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError(f"must be a non-empty string (got {describe(value)})")
    raise TypeError(f"config loader cannot parse type {hint!r}")  # a new kind of setting


def join_path(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def as_mapping(data: object, path: str, errors: list[str]) -> Mapping[Any, Any] | None:
    """`data` as a mapping; an empty YAML section (`listen:`) counts as `{}`."""
    if data is None:
        return {}
    if isinstance(data, Mapping):
        return data
    errors.append(f"{path}: must be a mapping (got {describe(data)})")
    return None


def parse_fields(
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
    mapping = as_mapping(data, path, errors)
    if mapping is None:
        return None
    types = field_types(cls)
    names = types.keys() if allowed is None else allowed
    parsed: dict[str, Any] = {}
    for key, raw in mapping.items():
        where = join_path(path, key)
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


def failed_fields(data: object, parsed: Mapping[str, Any], fields: Collection[str]) -> set[str]:
    """Fields `data` gave that did not parse (their errors are already listed)."""
    given = data.keys() if isinstance(data, Mapping) else ()
    return {key for key in given if key in fields and key not in parsed}


def parse_section(cls: type, data: object, path: str, errors: list[str]) -> Any:
    """One settings section, invalid fields left at their defaults (callers
    raise when `errors` grew). Relations between fields run on whatever
    parsed: an error elsewhere in the section does not hide them, only one in
    a field they compare does."""
    parsed = parse_fields(cls, data, path, errors)
    if parsed is None:
        return cls()
    section = cls(**parsed)
    relation = RELATIONS.get(cls)
    if relation is not None and not failed_fields(data, parsed, relation.fields):
        for key, problem in relation.check(section):
            errors.append(f"{join_path(path, key)}: {problem}")
    return section
