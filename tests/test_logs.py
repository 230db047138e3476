"""Log lines an operator can act on: a 500 names its exception and traceback."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from balancer.app import create_app
from balancer.config.server_settings import LogSettings
from balancer.config.settings import Settings
from balancer.logs import configure_logging
from balancer.store import MemoryStore


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


async def test_an_unhandled_error_line_carries_the_exception_and_traceback(
    aiohttp_client: Any, log_lines: io.StringIO, tmp_path: Path
) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        raise OSError(28, "No space left on device")

    app = create_app(Settings(data_dir=str(tmp_path)), run_prober=False, store=MemoryStore())
    app.router.add_get("/broken", broken)  # behind the balancer's one middleware
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
