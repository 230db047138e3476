"""The Redis the store tests run against is a real server, emptied per test."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as redis

from balancer.bench.redisserver import RedisServer


async def test_a_test_starts_from_an_empty_redis(redis_server: RedisServer, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set("left-behind", b"1")
        assert await client.get("left-behind") == b"1"
        redis_server.flush()  # what `redis_url` does before the next test
        assert await client.get("left-behind") is None
    finally:
        await client.aclose()


async def test_a_stopped_server_refuses_connections(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "own")
    server.start()
    assert server.command(b"PING") == b"+PONG"
    server.stop()
    assert server.command(b"PING") is None
