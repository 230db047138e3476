"""A balancer on Redis whose Redis dies (a real redis-server, killed): new
prompts get 503 `store_unavailable` with Retry-After and reach no backend,
reads that need the store fail clearly instead of answering empty, and once
redis-server is back on its port (with its saved data, as persistence would
keep it) the same balancer works again by itself: the jobs it held finish,
the one waiting is sent, new prompts run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from store_support import redis_store
from structlog.testing import capture_logs
from support import PoolFactory, colored

from balancer.bench.redisserver import RedisServer

LATE = "7d0c1a52-4a3e-4a77-9d7e-0a3b5c1f2e90"


async def assert_store_unavailable(resp: Any) -> None:
    assert resp.status == 503, await resp.text()
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["error"]["type"] == "store_unavailable" and body["node_errors"] == {}


async def test_a_lost_redis_refuses_work_fails_reads_and_heals_by_itself(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    store = redis_store(server.url)
    pool = await make_pool(1, store=store)
    emulator = pool.emulators["gpu0"]
    try:
        first = (await pool.submit(colored(1)))["prompt_id"]
        await pool.done(first)
        emulator.pause()  # two go to the backend, the third waits in the balancer
        held = [(await pool.submit(colored(10 + i)))["prompt_id"] for i in range(3)]
        assert server.command(b"SAVE") == b"+OK"  # what Redis persistence would keep
        server.stop()
        emulator.resume()  # their events arrive while nothing can record them
        await emulator.wait_idle(5.0)
        await pool.probe()  # a probe round (and the queue it wakes) meets the outage
        with capture_logs() as logs:
            refused = await pool.client.post(
                "/prompt", json={"prompt": colored(3), "prompt_id": LATE}
            )
            await assert_store_unavailable(refused)
            reads = (f"/history/{first}", f"/api/jobs/{first}", "/history", "/api/jobs")
            for path in (*reads, "/balancer/status"):
                await assert_store_unavailable(await pool.client.get(path))
        assert emulator.executed == [first, *held[:2]], "nothing new reached the backend"
        assert "/prompt" in {e.get("path") for e in logs if e["event"] == "store_unavailable"}

        server.start()  # the same port, its data read back from the save
        emulator.pause()  # more than the backend may hold: the rest wait in the balancer
        again = await pool.submit(colored(3), prompt_id=LATE)
        waiting = [(await pool.submit(colored(4 + i)))["prompt_id"] for i in range(3)]
        emulator.resume()
        await pool.settle([*held, LATE, *waiting])  # the same channel and queue, still working
        entry = (await (await pool.client.get(f"/history/{LATE}")).json())[LATE]
        assert entry["status"]["status_str"] == "success"
        assert again["prompt_id"] == LATE
        assert sorted(emulator.executed) == sorted([first, *held, LATE, *waiting]), "each once"
    finally:
        await pool.client.close()
        await store.aclose()
        server.stop()
