"""Reading the `backends:` list: each entry over the file's `defaults:`,
`url` required, names unique, at most one primary; and one backend on its own
for the admin API. Problems go to the caller's `errors` list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from balancer.config.backend_settings import BackendSettings
from balancer.config.errors import ConfigError
from balancer.config.fields import describe, failed_fields, field_types, parse_fields
from balancer.config.thresholds import threshold_relation


def _backend(
    index: int, data: object, defaults: Mapping[str, Any], errors: list[str]
) -> tuple[BackendSettings, set[str]] | None:
    """One entry with whatever parsed (invalid fields at their defaults), and
    the fields that did not parse, so checks across fields and entries still
    run on the rest. None when the entry is not a mapping."""
    path = f"backends[{index}]"
    parsed = parse_fields(BackendSettings, data, path, errors)
    if parsed is None:
        return None
    if not (isinstance(data, Mapping) and "url" in data):
        errors.append(f"{path}.url: required")
    failed = failed_fields(data, parsed, field_types(BackendSettings))
    backend = BackendSettings(**{"name": f"node{index}", "url": "", **defaults, **parsed})
    if not failed & {"vram_limit", "vram_resume"}:
        problem = threshold_relation(backend.vram_limit, backend.vram_resume)
        if problem is not None:
            errors.append(f"{path}.{problem[0]}: {problem[1]}")
    return backend, failed


def parse_backends(
    data: object, defaults: Mapping[str, Any], errors: list[str]
) -> list[BackendSettings]:
    """The backend list, with duplicate names and extra primaries reported."""
    if data is None or data == []:
        errors.append("backends: at least one backend is required")
        return []
    if not isinstance(data, list):
        errors.append(f"backends: must be a list of backends (got {describe(data)})")
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
