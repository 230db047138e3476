"""A prompt whose id the balancer makes is new: its submission asks the
store nothing before recording it (a read of the job and the pin under
that id, a Redis round trip per prompt, was for retries of an id the
client chose, which are still answered as before)."""

from __future__ import annotations

from typing import Any

from support import colored

from balancer.store import Pin, StoredJob
from balancer.store.redis import RedisStore

from .conftest import ReplicaFactory


class CountingStore(RedisStore):
    """The Redis store, counting its reads of a job with its pin."""

    reads: list[str] = []

    async def job_and_pin(self, prompt_id: str) -> tuple[StoredJob | None, Pin | None]:
        CountingStore.reads.append(prompt_id)
        return await super().job_and_pin(prompt_id)


async def test_a_prompt_without_an_id_reads_nothing_before_it_is_recorded(
    make_replicas: ReplicaFactory,
) -> None:
    CountingStore.reads = []
    (r0,) = await make_replicas(1, backends=1, redis_store=CountingStore)
    made = await r0.submit(colored(1))
    assert CountingStore.reads == []

    chosen: dict[str, Any] = {"prompt": colored(2), "prompt_id": "my-own-id"}
    first = await r0.client.post("/prompt", json=chosen)
    assert first.status == 200, await first.text()
    assert CountingStore.reads == ["my-own-id"]  # a retry of a chosen id is looked up
    again = await r0.client.post("/prompt", json=chosen)
    assert again.status == 200
    assert await again.json() == await first.json()  # the first answer, once more
    await r0.settle([made["prompt_id"], "my-own-id"])
