"""Fair sharing: per-key rate and queue cap (429 + Retry-After), and the
balancer queue taking keys in turn."""

from __future__ import annotations

from support import FakeClock, PoolFactory, colored

from balancer.auth.limits import RateLimiter
from balancer.jobs.fair import FairQueue
from balancer.store import StoredJob

from .auth_helpers import api_key, as_, keyed_pool


def job(prompt_id: str, tenant: str | None, number: float, at: float = 0.0) -> StoredJob:
    return StoredJob(prompt_id, {}, "d", None, number, tenant=tenant, submitted_at=at)


def test_two_floods_do_not_starve_a_light_key() -> None:
    queue = FairQueue()
    number = 0
    for i in range(50):
        for tenant in ("flood1", "flood2"):
            number += 1
            queue.push(job(f"{tenant}-{i}", tenant, number))
    queue.push(job("light-0", "light", number + 1))
    queue.push(job("light-1", "light", number + 2))
    assert [j.prompt_id for j in queue][:6] == [
        "flood1-0", "flood2-0", "light-0", "flood1-1", "flood2-1", "light-1",
    ]  # fmt: skip
    order = [queue.pop().prompt_id for _ in range(len(queue))]
    # each light job waits at most two other dispatches (one per flooding key)
    assert order.index("light-0") <= 2
    assert order.index("light-1") - order.index("light-0") <= 3
    assert [p for p in order if p.startswith("flood1")] == [f"flood1-{i}" for i in range(50)]


def test_fifo_order_within_a_tenant_and_front_jumps() -> None:
    queue = FairQueue()
    queue.push(job("a", "t", 1))
    queue.push(job("b", "t", 2))
    queue.push(job("c", "t", -3))
    assert queue.remove("b") is not None
    assert [queue.pop().prompt_id for _ in range(2)] == ["c", "a"]
    assert queue.peek() is None


def test_the_waiting_order_follows_from_the_stored_jobs_alone() -> None:
    """A restarted balancer pushes the stored waiting jobs in the store's
    order, not the order they arrived in: it must see the same queue."""
    jobs = [
        job("b-late", "bob", 5, at=20.0),
        job("a-2", "alice", 2),
        job("b-early", "bob", 5, at=10.0),  # an explicit equal number: the earlier one first
        job("anon", None, 9),
        job("a-1", "alice", 1),
        job("b-front", "bob", -7),
    ]
    arrived, restored = FairQueue(), FairQueue()
    for j in jobs:
        arrived.push(j)
    for j in sorted(jobs, key=lambda j: j.prompt_id):
        restored.push(j)
    expected = ["anon", "a-1", "b-front", "a-2", "b-early", "b-late"]
    assert [j.prompt_id for j in arrived] == [j.prompt_id for j in restored] == expected
    assert [arrived.pop().prompt_id for _ in range(len(jobs))] == expected


def test_token_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert [limiter.spend("alice", 2.0, 3.0) for _ in range(3)] == [None, None, None]
    assert limiter.wait("alice", 2.0, 3.0) == 0.5, "looking takes nothing"
    wait = limiter.spend("alice", 2.0, 3.0)
    assert wait is not None and 0 < wait <= 0.5
    clock.advance(0.5)
    assert limiter.spend("alice", 2.0, 3.0) is None


async def test_rate_limit_gives_429_with_retry_after(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1, api_key("alice", rate=1.0, burst=2))
    codes = []
    for i in range(3):
        resp = await pool.client.post("/prompt", json={"prompt": colored(i)}, headers=as_("alice"))
        codes.append(resp.status)
    assert codes == [200, 200, 429]
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"]["type"] == "rate_limited"


async def test_queue_cap_gives_429_with_retry_after(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1, api_key("alice", max_queued=2), api_key("bob"))
    for emulator in pool.emulators.values():
        emulator.pause()
    codes = []
    for i in range(3):
        resp = await pool.client.post("/prompt", json={"prompt": colored(i)}, headers=as_("alice"))
        codes.append(resp.status)
    assert codes == [200, 200, 429]
    assert "Retry-After" in resp.headers
    other = await pool.client.post("/prompt", json={"prompt": colored(9)}, headers=as_("bob"))
    assert other.status == 200
    for emulator in pool.emulators.values():
        emulator.resume()
