"""A client that retries its POST /prompt on another replica (its first
request's connection broke, or the replica died) while the first replica is
still sending the prompt to a backend: it is asked to come again (503 with
Retry-After), never told 200 with an empty body; once the prompt is
answered, or adopted after the first replica's death, the retry gets the
prompt's answer, and the prompt runs once."""

from __future__ import annotations

import asyncio
from typing import Any

from support import Pool, colored

from balancer.store import StoredJob
from balancer.store.redis import RedisStore

from .conftest import ReplicaFactory, beat, kill

PAST_THE_LEASE = 5.5  # replicas.lease is 5 s
PROMPT_ID = "0e6b5bd9-2f0d-4a43-9a3b-6c1f1d1f2a77"


class WatchedStore(RedisStore):
    """A RedisStore that tells when it recorded a job (the prompt is being
    sent to its backend from then on)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created = asyncio.Event()

    async def create(self, job: StoredJob, max_unfinished: int | None = None) -> bool:
        created = await super().create(job, max_unfinished)
        self.created.set()
        return created


def body() -> dict[str, Any]:
    return {"prompt": colored(3), "prompt_id": PROMPT_ID, "client_id": "tab"}


async def sending(make_replicas: ReplicaFactory) -> tuple[Pool, Pool, asyncio.Task[Any]]:
    """Two replicas; r0 took the prompt and is sending it to gpu0, which
    has not answered yet."""
    r0, r1 = await make_replicas(2, backends=1, redis_store=WatchedStore)
    r0.emulators["gpu0"].faults.hang = True  # it answers no HTTP request for now
    first = asyncio.create_task(r0.client.post("/prompt", json=body()))
    store = r0.balancer.store
    assert isinstance(store, WatchedStore)
    await asyncio.wait_for(store.created.wait(), 30)
    return r0, r1, first


async def retry(replica: Pool) -> tuple[int, dict[str, Any], str | None]:
    resp = await replica.client.post("/prompt", json=body())
    return resp.status, await resp.json(), resp.headers.get("Retry-After")


async def test_a_retry_while_another_replica_sends_the_prompt_is_asked_to_come_again(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1, first = await sending(make_replicas)
    status, answer, retry_after = await retry(r1)
    assert (status, answer["error"]["type"], retry_after) == (503, "prompt_in_flight", "1")
    r0.emulators["gpu0"].faults.hang = False
    resp = await asyncio.wait_for(first, 30)
    assert resp.status == 200
    told = await resp.json()
    assert told["prompt_id"] == PROMPT_ID and isinstance(told["number"], int)
    assert await retry(r1) == (200, told, None), "the first answer, as given"
    await r1.settle([PROMPT_ID])
    assert r1.emulators["gpu0"].executed.count(PROMPT_ID) == 1


async def test_a_retry_after_the_sending_replica_died_gets_the_prompts_number(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1, first = await sending(make_replicas)
    gpu0 = r1.emulators["gpu0"]
    await kill(r0)  # its POST to gpu0 is never answered to anyone
    assert (await retry(r1))[0] == 503, "not adopted yet: nobody knows the answer"
    r1.clock.advance(PAST_THE_LEASE)
    await beat(r1)  # r1 adopts the job, caught mid-dispatch
    job = await r1.balancer.store.get_job(PROMPT_ID)
    assert job is not None
    status, answer, _ = await retry(r1)
    assert status == 200
    assert answer == {"prompt_id": PROMPT_ID, "number": int(job.number), "node_errors": {}}
    gpu0.faults.hang = False
    await r1.settle([PROMPT_ID])
    assert gpu0.executed.count(PROMPT_ID) == 1, "the retry ran nothing twice"
    first.cancel()
