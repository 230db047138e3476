"""Settings of the balancer's own HTTP server: where it listens, request limits,
upstream timeouts, shutdown and logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from balancer.config.units import MiB

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class ListenSettings:
    host: str = "127.0.0.1"
    port: int = 8188


@dataclass(frozen=True)
class LimitSettings:
    max_body: int = 100 * MiB
    # Largest POST /upload/image|mask body the balancer's upload store accepts.
    max_upload: int = 100 * MiB
    # A connection whose request headers are not complete this long after it
    # opened is closed (slowloris); one peer may hold this many connections.
    header_timeout: float = 10.0
    max_connections_per_peer: int = 256


@dataclass(frozen=True)
class TimeoutSettings:
    """Upstream timeouts. ComfyUI validates prompts in its event loop and
    `/object_info` can be slow, so these are generous."""

    connect: float = 5.0
    request: float = 300.0


@dataclass(frozen=True)
class ShutdownSettings:
    # On SIGTERM, how long the whole shutdown may take, counted from its
    # start: client sockets told 1001, in-flight requests, the sends of jobs
    # already bound and webhooks in flight share this one deadline (past it,
    # what is left is cut: balancer/shutdown.py, forwards.py).
    timeout: float = 10.0


@dataclass(frozen=True)
class LogSettings:
    level: LogLevel = "info"
    format: Literal["json", "console"] = "json"
