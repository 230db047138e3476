"""A replica killed while its backend runs a job it follows: the frames the
backend sends after that, until another replica adopts the job and takes
over the dead replica's channel id (test_taken_channel.py), go to that id
and die there (ComfyUI does not replay them). The replica that adopts the job ends it from
the backend's history, and its client (with a socket on that replica) hears,
before the end, the `executed` of each output node it was not told: with the
outputs as `/history` shows them, once each. Those the dead replica told
(kept in the client's stream, journal.py) are not told again."""

from __future__ import annotations

from typing import Any

from support import HANG_BOUND, Pool, colored

from balancer.replicas.told import executed_since_start
from tests.proxy.test_ws import Socket, connect, execution_types

from .conftest import ReplicaFactory, beat, kill
from .test_lost_answer import PAST_THE_LEASE, STARTED_THEN_ADOPTED, heard


async def until_heard(sock: Socket, type_: str) -> None:
    while type_ not in sock.types():
        await sock.next(HANG_BOUND)


async def adopted_and_ended(r0: Pool, r1: Pool, prompt_id: str) -> dict[str, Any]:
    """r0 dies; gpu0 runs the rest of the job while nobody holds r0's
    channel id (its frames are lost); r1 adopts it and ends it from gpu0's
    history. The history entry, as r1 serves it."""
    await kill(r0)
    gpu0 = r0.emulators["gpu0"]
    gpu0.resume()
    await gpu0.wait_idle(HANG_BOUND)  # before the adoption (test_taken_channel.py: after it)
    r1.clock.advance(PAST_THE_LEASE)
    await beat(r1)  # r0's lease lapsed: r1 adopts the job
    await r1.settle([prompt_id])
    entry: dict[str, Any] = (await (await r1.client.get(f"/history/{prompt_id}")).json())[prompt_id]
    return entry


def executed(node: str, entry: dict[str, Any], prompt_id: str) -> dict[str, Any]:
    """The `executed` frame ComfyUI sends for `node`, as `entry` keeps its output."""
    data = {"node": node, "display_node": node, "output": entry["outputs"][node]}
    return {"type": "executed", "data": {**data, "prompt_id": prompt_id}}


async def test_the_outputs_the_dead_replica_never_told_are_told_from_history(
    make_replicas: ReplicaFactory,
) -> None:
    """r0 told the start (the client's socket is on r1) and died before the
    first node ran: the client hears the SaveImage's `executed` from gpu0's
    history, then the end, each once, in order."""
    r0, r1 = await make_replicas(2, backends=1, one_store=True)
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()  # the job starts, then holds before its first node
    sock = await connect(r1, "c0")
    prompt_id = (await r0.submit(colored(2), client_id="c0"))["prompt_id"]
    await until_heard(sock, "execution_cached")
    entry = await adopted_and_ended(r0, r1, prompt_id)
    await sock.until_done(prompt_id, HANG_BOUND)
    frames = heard(sock, prompt_id)
    assert [f["type"] for f in frames] == STARTED_THEN_ADOPTED
    assert frames[2] == executed("3", entry, prompt_id), "as ComfyUI sends it"
    assert frames[2]["data"]["output"]["images"][0]["subfolder"].endswith("@gpu0")
    assert gpu0.executed == [prompt_id]
    await sock.ws.close()


async def test_an_output_the_dead_replica_told_is_not_told_again(
    make_replicas: ReplicaFactory,
) -> None:
    """Two output nodes: node 3 is cached (a run before filled the cache), so
    gpu0 tells its `executed` before it holds at node 4, and r0 relays it;
    r0 dies. From history the client hears node 4's `executed` only."""
    r0, r1 = await make_replicas(2, backends=1, one_store=True)
    gpu0 = r0.emulators["gpu0"]
    first = (await r1.submit(colored(2), client_id="x"))["prompt_id"]
    await r1.settle([first])
    gpu0.pause()
    sock = await connect(r1, "c0")
    prompt = colored(2)
    prompt["4"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["2", 0], "filename_prefix": "b"},
    }
    prompt_id = (await r0.submit(prompt, client_id="c0"))["prompt_id"]
    await until_heard(sock, "executed")  # node 3's, cached, from r0
    entry = await adopted_and_ended(r0, r1, prompt_id)
    await sock.until_done(prompt_id, HANG_BOUND)
    frames = heard(sock, prompt_id)
    assert [f["data"]["node"] for f in frames if f["type"] == "executed"] == ["3", "4"]
    assert execution_types(frames) == [  # the cached node's `progress_state` left out
        "execution_start",
        "execution_cached",
        "executed",
        "executed",
        "execution_success",
        "executing",
    ]
    assert [f for f in frames if f["type"] == "executed"][1] == executed("4", entry, prompt_id)
    assert gpu0.executed == [first, prompt_id]
    await sock.ws.close()


def test_what_was_told_is_not_known_once_the_stream_no_longer_holds_the_start() -> None:
    """The stream is capped: with the run's start gone, an output told may be
    gone too, so none is told from history (None); an earlier run's
    `executed` (the job ran again elsewhere) does not count for the latest."""
    pid = "p1"
    start = {"type": "execution_start", "data": {"prompt_id": pid}}
    done = [{"type": "executed", "data": {"node": n, "prompt_id": pid}} for n in ("3", "4")]
    other = {"type": "executed", "data": {"node": "5", "prompt_id": "p2"}}
    assert executed_since_start([done[0], other], pid) is None
    assert executed_since_start([start, done[0], other], pid) == {"3"}
    assert executed_since_start([start, *done, start, done[1]], pid) == {"4"}
