"""The Redis store answers every read as the memory store does, after the
same seeded sequence of writes: creates, moves as the lifecycle makes them
(legal from one state, refused from the others), pins and kept
history past its limit. The Lua scripts keep every index (unfinished, per
backend, per tenant, ended, pins, history order) as the memory store's own
bookkeeping does."""

from __future__ import annotations

import random
from typing import Any

from store_support import redis_store

from balancer.jobs.states import FROM
from balancer.store import MemoryStore, Pin, Store, StoredJob
from balancer.store.model import JobStateName

BACKENDS = ("gpu0", "gpu1", "gpu2")
TENANTS = (None, "alice", "bob")
LIMIT = 4


def write(rng: random.Random, step: int) -> tuple[str, tuple[Any, ...]]:
    """One write, drawn from a small id space so writes meet the same jobs.
    Numbers are unique, as the pool's counter makes them (`front` negative)."""
    pid = f"p{rng.randrange(20)}"
    kinds = ["create", "move", "pin", "unpin", "keep"]  # discard: the contract tests
    (kind,) = rng.choices(kinds, weights=[4, 8, 2, 1, 2])
    if kind == "create":
        job = StoredJob(
            pid, {"prompt": {"1": {}}, "n": step}, "d", "c", float(rng.choice((step, -step))),
            tenant=rng.choice(TENANTS),
        )  # fmt: skip
        return "create", (job,)
    if kind == "move":  # a legal move, as Jobs makes them
        to: JobStateName = rng.choice(list(FROM))
        fields = {"backend": rng.choice((None, *BACKENDS)), "attempts": step}
        return "transition", (pid, FROM[to], to, fields)
    if kind == "pin":
        return "put_pin", (Pin(pid, rng.choice(BACKENDS), "d", bytes([step % 256]), "c"),)
    if kind == "unpin":
        return "remove_pin", (pid,)
    entry = {"status": {"messages": [["execution_start", {"timestamp": rng.randrange(5)}]]}}
    return "put_history", (pid, entry)


async def reads(store: Store) -> dict[str, Any]:
    return {
        "jobs": await store.jobs(),
        "unfinished": await store.unfinished_jobs(),
        "on": {b: await store.jobs_on(b) for b in BACKENDS},
        "tenants": {t: await store.count_unfinished(t) for t in TENANTS},
        "waiting": await store.count_waiting(),
        "pins": {b: sorted(p.prompt_id for p in await store.pins_of(b)) for b in BACKENDS},
        "history": list(await store.histories()),
    }


async def test_redis_answers_as_memory_after_the_same_writes(redis_url: str) -> None:
    rng = random.Random(14)
    memory = MemoryStore(max_history=LIMIT)
    redis = redis_store(redis_url, max_history=LIMIT)
    try:
        for step in range(400):
            name, args = write(rng, step)
            answers = [await getattr(store, name)(*args) for store in (memory, redis)]
            assert answers[0] == answers[1], f"step {step}: {name}{args}"
            if step % 20 == 19:
                assert await reads(redis) == await reads(memory), f"after step {step}"
        assert await reads(redis) == await reads(memory)
    finally:
        await redis.aclose()
