"""Settings: typed dataclasses (`settings` and its `*_settings` sections) and the
YAML loader that fills them (`load`)."""

from balancer.config.backend_settings import BackendSettings, ProbeSettings
from balancer.config.check import check_config
from balancer.config.errors import ConfigError
from balancer.config.load import load_settings, parse_settings
from balancer.config.server_settings import (
    LimitSettings,
    ListenSettings,
    LogSettings,
    TimeoutSettings,
)
from balancer.config.settings import Settings
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
