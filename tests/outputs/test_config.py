"""The `outputs:` section: off by default, every mistake reported at once."""

from __future__ import annotations

import pytest

from balancer.config.errors import ConfigError
from balancer.config.load import parse_settings

BACKENDS = {"backends": [{"name": "gpu0", "url": "http://127.0.0.1:8189"}]}


def test_the_sink_is_off_by_default() -> None:
    assert parse_settings(BACKENDS).outputs.sink == "none"


def test_a_full_section_parses() -> None:
    outputs = parse_settings(
        {
            **BACKENDS,
            "outputs": {
                "sink": "s3",
                "bucket": "b",
                "prefix": "/jobs/out/",
                "endpoint_url": "http://minio:9000/",
                "addressing": "path",
                "presign_ttl": "2h",
                "delete_after": "720h",
                "view": "redirect",
            },
        }
    ).outputs
    assert (outputs.prefix, outputs.endpoint_url) == ("jobs/out", "http://minio:9000")
    assert (outputs.presign_ttl, outputs.delete_after) == (7200.0, 720 * 3600.0)


def test_every_mistake_is_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            {
                **BACKENDS,
                "outputs": {
                    "sink": "s3",
                    "prefix": "a/../b",
                    "addressing": "host",
                    "presign_ttl": "-1s",
                    "access_key": "AKIA...",
                },
            }
        )
    text = "\n".join(caught.value.errors)
    assert "outputs.prefix" in text and "outputs.addressing" in text
    assert "outputs.access_key: unknown key" in text


def test_relations_need_a_bucket_and_a_short_enough_ttl() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BACKENDS, "outputs": {"sink": "s3", "presign_ttl": "169h"}})
    text = "\n".join(caught.value.errors)
    assert (
        "outputs.bucket: required" in text and "outputs.presign_ttl: must be at most 168h" in text
    )
