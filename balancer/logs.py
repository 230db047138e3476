"""structlog set-up: one JSON object per line on stderr.

Never log secrets or whole workflows: callers pass ids, names and numbers.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from balancer.config.model import LogSettings


def _renderers(settings: LogSettings) -> list[Any]:
    """The last processors: JSON needs the exception turned into text first
    (`exception`: the traceback), or a line says `"exc_info": true` and
    nothing more; the console renderer formats exceptions itself."""
    if settings.format == "console":
        return [structlog.dev.ConsoleRenderer(colors=False)]
    return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Log lines go to `stream` (stderr by default)."""
    level = getattr(logging, settings.level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *_renderers(settings),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    # aiohttp's access log is noise next to the job-phase lines.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
