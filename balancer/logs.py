"""structlog set-up: one JSON object per line on stderr.

Never log secrets or whole workflows: callers pass ids, names and numbers.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from balancer.config.server_settings import LogSettings
from balancer.redact import redact_event


def _renderers(settings: LogSettings) -> list[Any]:
    """The last processors: JSON needs the exception turned into text first
    (`exception`: the traceback), or a line says `"exc_info": true` and
    nothing more; the console renderer formats exceptions itself."""
    if settings.format == "console":
        return [redact_event, structlog.dev.ConsoleRenderer(colors=False)]
    return [structlog.processors.format_exc_info, redact_event, structlog.processors.JSONRenderer()]


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
    # aiohttp's own loggers go through structlog too (JSON, redacted); its
    # access log is noise next to the job-phase lines.
    aiohttp_log = logging.getLogger("aiohttp")
    aiohttp_log.handlers[:] = [AiohttpBridge()]
    aiohttp_log.propagate = False
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class AiohttpBridge(logging.Handler):
    """aiohttp's stdlib log records as structlog lines. A malformed request
    is one `bad_http_request` line naming the parser's complaint, never the
    raw bytes (they may hold an `Authorization` header); anything else keeps
    its traceback, redacted."""

    def emit(self, record: logging.LogRecord) -> None:
        log = structlog.get_logger(record.name)
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = str(exc.message).strip().split(":", 1)[0]
            log.warning("bad_http_request", status=exc.code, reason=reason)
            return
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        log.log(record.levelno, "aiohttp", message=text)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
