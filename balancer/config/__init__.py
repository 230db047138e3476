"""Settings: typed dataclasses (`model`) and the YAML loader that fills them (`load`)."""

from balancer.config.load import ConfigError, check_config, load_settings, parse_settings
from balancer.config.model import (
    BackendSettings,
    LimitSettings,
    ListenSettings,
    LogSettings,
    ProbeSettings,
    Settings,
    TimeoutSettings,
)
from balancer.config.units import parse_duration, parse_size

__all__ = [
    "BackendSettings",
    "ConfigError",
    "LimitSettings",
    "ListenSettings",
    "LogSettings",
    "ProbeSettings",
    "Settings",
    "TimeoutSettings",
    "check_config",
    "load_settings",
    "parse_duration",
    "parse_settings",
    "parse_size",
]
