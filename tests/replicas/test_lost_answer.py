"""A replica killed after it sent a prompt to its backend and before it
answered the client (issue 14's HA run: a POST in flight at r0's kill -9).
The client retries on another replica, which answers once it has adopted
the job. The job's frames went to the dead replica's channel and died
there (ComfyUI does not replay them), so its client hears what the store
and the backend's history can tell: the start, unless the dead replica
recorded it as told (a start is recorded before it is told, as an end
is), the outputs it was not told (test_adopted_outputs.py), and the end,
each once, in order. (Frames its backend sends once the job is adopted
reach the client: test_taken_channel.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from support import HANG_BOUND, HeldAnswer, Pool, colored

from tests.proxy.test_ws import Socket, connect

from .conftest import ReplicaFactory, beat, kill

PAST_THE_LEASE = 5.5  # replicas.lease is 5 s
PROMPT_ID = "00000000-0000-4000-8000-000000000001"
# What the client of a job told its start by r0, then adopted before its
# first node ran, hears: the rest from history.
STARTED_THEN_ADOPTED = [
    "execution_start",
    "execution_cached",
    "executed",
    "execution_success",
    "executing",
]


def heard(sock: Socket, prompt_id: str) -> list[dict[str, Any]]:
    """The frames of `prompt_id` its socket got, in order."""
    return [
        f
        for f in sock.frames
        if isinstance(f, dict) and isinstance(f.get("data"), dict)
        if f["data"].get("prompt_id") == prompt_id
    ]


async def killed_before_answering(
    r0: Pool, r1: Pool, held: HeldAnswer, started: asyncio.Event | None
) -> dict[str, Any]:
    """POST through r0, whose send gpu0 queues and whose answer is held;
    r0 dies (once `started`, when given, is set); gpu0 runs what it holds
    while nobody holds r0's channel id (its frames are lost); the client's
    retry on r1 is refused while r0's lease holds, answered once r1 adopted
    the job. The body of the prompt."""
    body = {"prompt": colored(2), "client_id": "c0", "prompt_id": PROMPT_ID}
    held.armed = True
    sending = asyncio.ensure_future(r0.client.post("/prompt", json=body))
    try:
        await asyncio.wait_for(held.served.wait(), HANG_BOUND)  # gpu0 queued it
        if started is not None:
            await asyncio.wait_for(started.wait(), HANG_BOUND)
        await kill(r0)
        sending.cancel()  # the client's connection to r0 breaks: no answer
        gpu0 = r0.emulators["gpu0"]
        gpu0.resume()
        await gpu0.wait_idle(HANG_BOUND)  # before the adoption (test_taken_channel.py: after it)
        retry = await r1.client.post("/prompt", json=body)
        assert retry.status == 503, await retry.text()  # still r0's, being sent
        assert (await retry.json())["error"]["type"] == "prompt_in_flight"
        r1.clock.advance(PAST_THE_LEASE)
        await beat(r1)  # r0's lease lapsed: r1 adopts the job
        retry = await r1.client.post("/prompt", json=body)
        assert retry.status == 200, await retry.text()
        assert (await retry.json())["prompt_id"] == PROMPT_ID
    finally:
        held.release.set()  # r0's handler ends (its client is gone)
    return body


async def test_a_start_the_dead_replica_never_told_is_told_from_history(
    make_replicas: ReplicaFactory,
) -> None:
    """gpu0 runs another job first, so the prompt waits there and its start
    comes after r0 died: nobody told it; r1, ending the job from gpu0's
    history, tells its start (as the history recorded it), then its output
    (nothing after an untold start was told), before its end."""
    held = HeldAnswer("POST", "/prompt")
    r0, r1 = await make_replicas(2, backends=1, one_store=True, middlewares=(held.middleware(),))
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()  # each job starts, then holds before its first node
    other = await connect(r1, "x")
    first = (await r1.submit(colored(1), client_id="x"))["prompt_id"]
    while "execution_start" not in other.types():
        await other.next(HANG_BOUND)
    sock = await connect(r1, "c0")
    await killed_before_answering(r0, r1, held, None)
    await r1.settle([first, PROMPT_ID])
    await sock.until_done(PROMPT_ID, HANG_BOUND)
    frames = heard(sock, PROMPT_ID)
    types = [f["type"] for f in frames]
    assert types == ["execution_start", "executed", "execution_success", "executing"]
    entry = (await (await r1.client.get(f"/history/{PROMPT_ID}")).json())[PROMPT_ID]
    start = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_start")
    assert frames[0]["data"] == start, "the start as gpu0 recorded it"
    assert gpu0.executed == [first, PROMPT_ID], "each ran once"
    await other.ws.close()
    await sock.ws.close()


async def test_a_start_the_dead_replica_told_before_its_dispatch_landed_is_not_told_again(
    make_replicas: ReplicaFactory,
) -> None:
    """gpu0 starts the prompt at once and r0 tells its client the start
    before the answer to its send came (it is still dispatching): that
    start was recorded before it was told, so r1, ending the job from
    history, tells only its end."""
    held = HeldAnswer("POST", "/prompt")
    r0, r1 = await make_replicas(2, backends=1, one_store=True, middlewares=(held.middleware(),))
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    sock = await connect(r1, "c0")
    told = asyncio.Event()

    async def watch() -> None:
        while "execution_cached" not in sock.types():  # after its start, before its first node
            await sock.next(HANG_BOUND)
        told.set()

    watching = asyncio.ensure_future(watch())
    await killed_before_answering(r0, r1, held, told)
    await watching
    await r1.settle([PROMPT_ID])
    await sock.until_done(PROMPT_ID, HANG_BOUND)
    types = [f["type"] for f in heard(sock, PROMPT_ID)]
    assert types == STARTED_THEN_ADOPTED
    assert gpu0.executed == [PROMPT_ID]
    await sock.ws.close()
