"""A key's rate limit is one of the admission rules (issue 11): checked in the
same step as the key's cap and the queue, and spent only by a prompt that is
admitted. A prompt refused for any reason takes no token and no number and
leaves no job behind; a retry of an admitted prompt_id is not a new prompt."""

from __future__ import annotations

import asyncio
from typing import Any

from support import Pool, PoolFactory, colored

from tests.auth.auth_helpers import api_key, as_, keyed_pool

# A key that may submit 5 prompts at once and then one every 1000 s: the
# injected clock never gets that far in a test, so no token comes back.
BURST = 5


async def rated_pool(make_pool: PoolFactory, **limits: Any) -> Pool:
    alice = api_key("alice", rate=0.001, burst=BURST, **limits)
    pool = await keyed_pool(make_pool, 2, alice, api_key("root", "admin"))
    for emulator in pool.emulators.values():
        emulator.pause()
    return pool


async def post(pool: Pool, body: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
    resp = await pool.client.post("/prompt", json=body, headers=as_("alice"))
    return resp.status, await resp.json(), resp.headers.get("Retry-After")


async def listed_ids(pool: Pool) -> set[str]:
    resp = await pool.client.get("/api/jobs", headers=as_("root"))
    return {job["id"] for job in (await resp.json())["jobs"]}


async def test_concurrent_prompts_at_the_rate_limit(make_pool: PoolFactory) -> None:
    """Twelve at once against a burst of five: exactly five are accepted, with
    five numbers in a row; the other seven are 429 in ComfyUI's error shape
    and leave no job anywhere."""
    pool = await rated_pool(make_pool)
    answers = await asyncio.gather(*(post(pool, {"prompt": colored(i)}) for i in range(12)))
    accepted = [body for status, body, _ in answers if status == 200]
    refused = [(body, retry) for status, body, retry in answers if status == 429]
    assert len(accepted) == BURST and len(refused) == 12 - BURST
    for body, retry in refused:
        assert body == {
            "error": {
                "type": "rate_limited",
                "message": "Rate limit exceeded for this key",
                "details": body["error"]["details"],
                "extra_info": {},
            },
            "node_errors": {},
        }
        assert retry is not None and int(retry) >= 1
    numbers = sorted(body["number"] for body in accepted)
    assert numbers == list(range(numbers[0], numbers[0] + BURST)), "refusals take no number"
    assert await listed_ids(pool) == {body["prompt_id"] for body in accepted}


async def test_a_prompt_refused_for_another_reason_takes_no_token(
    make_pool: PoolFactory,
) -> None:
    """Refusals by the pool (a node no backend has) and by the key's cap
    leave the key's rate untouched: five good prompts still go through."""
    pool = await rated_pool(make_pool, max_queued=BURST)
    unknown = colored(0)
    unknown["1"]["class_type"] = "NoSuchNodeAnywhere"
    for _ in range(3):
        status, body, _ = await post(pool, {"prompt": unknown})
        assert status == 400 and body["error"]["type"] == "prompt_outputs_failed_validation"
    ids = []
    for i in range(BURST):
        status, body, _ = await post(pool, {"prompt": colored(i + 1)})
        assert status == 200, body
        ids.append(body["prompt_id"])
    status, body, _ = await post(pool, {"prompt": colored(9)})
    assert status == 429 and body["error"]["details"] == f"max_queued={BURST}"
    assert await listed_ids(pool) == set(ids)


async def test_a_retry_of_an_admitted_prompt_is_answered_not_limited(
    make_pool: PoolFactory,
) -> None:
    """With the key's tokens used up, resending an accepted prompt_id (a
    client retrying after a lost answer) gets its first answer back."""
    pool = await rated_pool(make_pool)
    first = [await post(pool, {"prompt": colored(i)}) for i in range(BURST)]
    assert [status for status, _, _ in first] == [200] * BURST
    status, body, _ = await post(pool, {"prompt": colored(99)})
    assert status == 429 and body["error"]["type"] == "rate_limited"
    _, original, _ = first[0]
    again = {"prompt": colored(0), "prompt_id": original["prompt_id"]}
    status, body, _ = await post(pool, again)
    assert status == 200 and body == original
    assert len(await listed_ids(pool)) == BURST
