"""Typed settings: plain frozen dataclasses, defaults applied, read once.

`balancer.config.load` turns YAML into these; nothing else parses config.
Sizes are bytes (the loader accepts `8GiB`-style strings), times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MiB = 1024 * 1024

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class ListenSettings:
    host: str = "127.0.0.1"
    port: int = 8188


@dataclass(frozen=True)
class ProbeSettings:
    """How the prober watches backends."""

    interval: float = 1.0
    timeout: float = 2.0
    unhealthy_after: int = 3
    healthy_after: int = 1
    # Load data older than this makes a backend ineligible (unknown is not idle).
    stale_after: float = 5.0


@dataclass(frozen=True)
class LimitSettings:
    max_body: int = 100 * MiB


@dataclass(frozen=True)
class TimeoutSettings:
    """Upstream timeouts. ComfyUI validates prompts in its event loop and
    `/object_info` can be slow, so these are generous."""

    connect: float = 5.0
    request: float = 300.0


@dataclass(frozen=True)
class BackendSettings:
    name: str
    url: str
    primary: bool = False
    min_free_vram: int = 0


@dataclass(frozen=True)
class LogSettings:
    level: LogLevel = "info"
    format: Literal["json", "console"] = "json"


@dataclass(frozen=True)
class Settings:
    backends: tuple[BackendSettings, ...] = ()
    listen: ListenSettings = field(default_factory=ListenSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    log: LogSettings = field(default_factory=LogSettings)
