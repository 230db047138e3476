"""structlog set-up: one JSON object per line on stderr.

Never log secrets or whole workflows: callers pass ids, names and numbers.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from balancer.config.model import LogSettings


def configure_logging(settings: LogSettings) -> None:
    level = getattr(logging, settings.level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # aiohttp's access log is noise next to the job-phase lines.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
