"""`store.kind: redis` from the config: the store is built from `store.url`
(password in the URL), and that password appears in no log line, no status
answer and no error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from store_support import serve_with_store
from structlog.testing import capture_logs

from balancer.app import create_app
from balancer.bench.harness import free_port
from balancer.bench.redisserver import RedisServer
from balancer.config import parse_settings
from balancer.config.settings import Settings
from balancer.proxy.context import BALANCER
from balancer.store import StoreUnavailable
from balancer.store.open import close_store, open_store
from balancer.store.redis import RedisStore

SECRET = "hunter2-s3cret"


def settings_for(url: str) -> Settings:
    return parse_settings(
        {
            "backends": [{"name": "gpu0", "url": "http://127.0.0.1:9"}],
            "store": {"kind": "redis", "url": url, "prefix": "pool-a:", "timeout": "500ms"},
        }
    )


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Any:
    """A redis-server of this test's own that requires a password."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    assert server.command(b"CONFIG", b"SET", b"requirepass", SECRET.encode()) == b"+OK"
    yield server
    server.stop()


async def test_the_store_comes_from_the_url_and_its_password_is_never_shown(
    guarded_redis: RedisServer, aiohttp_client: Any
) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{guarded_redis.port}/0"
    with capture_logs() as logs:
        client = await aiohttp_client(create_app(settings_for(url), run_prober=False))
        store = client.app[BALANCER].store
        assert isinstance(store, RedisStore)
        assert await store.next_number() == 1, "it authenticated with the URL's password"
        status = await (await client.get("/balancer/status")).text()
        await client.close()
    assert SECRET not in status
    (opened,) = [e for e in logs if e["event"] == "store"]
    assert opened["url"] == f"redis://***@127.0.0.1:{guarded_redis.port}/0"
    assert opened["prefix"] == "pool-a:"
    assert not any(SECRET in str(e) for e in logs)


async def test_a_wrong_password_is_unavailable_without_echoing_it(
    guarded_redis: RedisServer,
) -> None:
    store = open_store(settings_for(f"redis://:wrong-{SECRET}@127.0.0.1:{guarded_redis.port}/0"))
    try:
        with pytest.raises(StoreUnavailable) as failed:
            await store.next_number()
        assert SECRET not in str(failed.value)
    finally:
        await close_store(store)


def test_serve_stops_with_one_line_when_redis_does_not_answer(tmp_path: Path) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"  # nothing listens there
    done = serve_with_store(tmp_path, {"kind": "redis", "url": url})
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("the store does not answer: redis:")
    assert SECRET not in done.stderr
