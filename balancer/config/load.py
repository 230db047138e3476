"""YAML -> `Settings`, read once, reporting every mistake in the file at once.

The document's sections are read by `fields.py`, the backend list with its
`defaults:` by `backend_list.py`; every part appends its problems to one list
and `ConfigError` carries them all.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from balancer.config.backend_list import parse_backends
from balancer.config.backend_settings import BackendSettings
from balancer.config.errors import ConfigError
from balancer.config.fields import as_mapping, field_types, parse_fields, parse_section
from balancer.config.rules import BACKEND_IDENTITY
from balancer.config.settings import Settings


def parse_settings(data: object) -> Settings:
    """Validate a whole parsed YAML document; raise ConfigError with every problem."""
    errors: list[str] = []
    doc = as_mapping(data, "(document)", errors)
    if doc is None:
        raise ConfigError(errors)
    types = field_types(Settings)
    for key in doc:
        if key not in types and key != "defaults":
            allowed = ", ".join(sorted([*types, "defaults"]))
            errors.append(f"{key}: unknown key (allowed: {allowed})")
    defaultable = field_types(BackendSettings).keys() - BACKEND_IDENTITY
    defaults = parse_fields(BackendSettings, doc.get("defaults"), "defaults", errors, defaultable)
    backends = parse_backends(doc.get("backends"), defaults or {}, errors)
    sections = {
        name: parse_section(hint, doc.get(name), name, errors)
        for name, hint in types.items()
        if isinstance(hint, type) and dataclasses.is_dataclass(hint)
    }
    scalar_keys = [k for k, hint in types.items() if hint is str and k in doc]
    scalars = parse_fields(Settings, {k: doc[k] for k in scalar_keys}, "", errors) or {}
    if errors:
        raise ConfigError(errors)
    return Settings(backends=tuple(backends), **sections, **scalars)


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
