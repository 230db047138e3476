"""Fixtures for the output sink: a running rclone S3 server, and the AWS
credential chain pointed at its keys through the environment (as an
operator would, never through the YAML)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from balancer.bench.s3server import BUCKET, S3Server
from balancer.config.delivery_settings import OutputSettings


@pytest.fixture
async def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[S3Server]:
    server = S3Server(tmp_path / "s3")
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    await server.start()
    yield server
    server.close()


def sink_settings(server: S3Server, **overrides: object) -> OutputSettings:
    """The sink on, against the test server, with a short retry schedule."""
    base: dict[str, object] = {
        "sink": "s3",
        "bucket": BUCKET,
        "endpoint_url": server.endpoint,
        "addressing": "path",
        "retry_delay": 0.01,
        "max_attempts": 3,
    }
    return OutputSettings(**{**base, **overrides})  # type: ignore[arg-type]
