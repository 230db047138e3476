"""`store.kind: redis` with `store.url`: checked with every other config
error, and the URL's password never appears in an error."""

from __future__ import annotations

import pytest

from balancer.config import ConfigError, parse_settings

BACKENDS = [{"name": "gpu0", "url": "http://127.0.0.1:8188"}]


def errors_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    return info.value.errors


def test_a_redis_store_is_read_with_its_url_prefix_and_timeout() -> None:
    store = {"kind": "redis", "url": "rediss://:s3cret@redis.internal:6380/2", "timeout": "500ms"}
    settings = parse_settings({"backends": BACKENDS, "store": {**store, "prefix": "pool-a:"}})
    assert settings.store.kind == "redis"
    assert settings.store.url == "rediss://:s3cret@redis.internal:6380/2"
    assert (settings.store.prefix, settings.store.timeout) == ("pool-a:", 0.5)
    assert parse_settings({"backends": BACKENDS}).store.kind == "sqlite", "SQLite stays the default"


def test_store_errors_come_with_every_other_error() -> None:
    data = {
        "backends": [{"name": "gpu0", "url": "ftp://a"}],
        "store": {"kind": "redis", "timeout": 0},
        "probe": {"interval": "-1s"},
    }
    errors = errors_of(data)
    assert "store.url: required when store.kind is redis" in errors
    assert "store.timeout: must be > 0" in errors
    assert any(e.startswith("backends[0].url:") for e in errors)
    assert any(e.startswith("probe.interval:") for e in errors)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://:hunter2@redis:6379/0", "must be a redis:// or rediss:// URL"),
        ("redis://:hunter2@redis:port/0", "bad port"),
        ("redis://:hunter2@redis:6379/cache", "must be a database number"),
    ],
)
def test_a_bad_redis_url_is_named_without_its_password(url: str, problem: str) -> None:
    (error,) = errors_of({"backends": BACKENDS, "store": {"kind": "redis", "url": url}})
    assert error.startswith("store.url: ") and problem in error
    assert "hunter2" not in error and "***@redis" in error


def test_a_redis_url_without_kind_redis_is_a_mistake() -> None:
    errors = errors_of({"backends": BACKENDS, "store": {"url": "redis://127.0.0.1:6379/0"}})
    assert errors == ["store.url: only used when store.kind is redis"]
