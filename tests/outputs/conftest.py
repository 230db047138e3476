"""Fixtures for the output sink: a running rclone S3 server, and the AWS
credential chain pointed at its keys through the environment (as an
operator would, never through the YAML)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from balancer.config.model import OutputSettings

from .s3server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
async def s3(tmp_path: Path, aws_env: None) -> AsyncIterator[S3Server]:
    server = S3Server(tmp_path / "s3")
    await server.start()
    yield server
    server.stop()


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
