"""Log lines an operator can act on: a 500 names its exception and traceback."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiohttp import web

from balancer.app import error_middleware
from balancer.config.server_settings import LogSettings
from balancer.logs import configure_logging


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


async def test_an_unhandled_error_line_carries_the_exception_and_traceback(
    aiohttp_client: Any, log_lines: io.StringIO
) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        raise OSError(28, "No space left on device")

    app = web.Application(middlewares=[error_middleware(1024)])
    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    resp = await client.get("/broken")
    assert resp.status == 500
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    [line] = [line for line in lines if line["event"] == "unhandled_error"]
    assert line["path"] == "/broken"
    assert "exc_info" not in line
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "in broken" in line["exception"]
    assert line["exception"].rstrip().endswith("OSError: [Errno 28] No space left on device")
