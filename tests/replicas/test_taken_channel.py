"""A replica killed while its backend holds or runs a job it sent: the
backend sends that run's frames to the dead replica's channel client_id
(ComfyUI looks a prompt's client_id up at each send). The replica that
adopts the job connects to the backend under that id (takeover.py), so what
the backend sends after the adoption reaches the job's client, whose socket
is on a third replica: each frame once, in order, with one end; what the
adoption tells from history (the outputs, the end) is not told again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from support import HANG_BOUND, Pool, workflow

from balancer.replicas.takeover import TakenChannel
from balancer.store.redis import RedisStore
from tests.proxy.test_ws import Message, Socket, connect

from .conftest import ReplicaFactory, beat, kill
from .test_lost_answer import PAST_THE_LEASE
from .test_replay import COLORS, job_frames

Shape = tuple[list[tuple[str, Any, Any]], int]
Job = Callable[[], dict[str, Any]]


def progress_job() -> dict[str, Any]:
    """A run with `executing`, `progress` and binary frames (progress_ws)
    and an output node (`executed`), on a colour of its own (never cached)."""
    wf = workflow("progress_ws")
    wf["1"]["inputs"]["color"] = next(COLORS)
    wf["4"] = {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}}
    return wf


def shape(frames: list[Message], prompt_id: str) -> Shape:
    """The job's text frames (type, node, value) and how many binary frames came."""
    return job_frames(frames, prompt_id), sum(isinstance(f, bytes) for f in frames)


async def submit(replica: Pool, client_id: str, job: Job = progress_job) -> str:
    return str((await replica.submit(job(), client_id=client_id))["prompt_id"])


async def reference(replica: Pool, job: Job = progress_job) -> Shape:
    """Every frame of such a job, as a socket open throughout on its
    sender gets them."""
    sock = await connect(replica, "reference")
    prompt_id = await submit(replica, "reference", job)
    frames = await sock.until_done(prompt_id, HANG_BOUND)
    await sock.ws.close()
    return shape(frames, prompt_id)


async def holding_gpu0(r1: Pool) -> tuple[Socket, str]:
    """gpu0 paused, and held by a job of client `x` sent through r1
    (before its first node): its socket and the job."""
    r1.emulators["gpu0"].pause()
    other = await connect(r1, "x")
    first = await submit(r1, "x")
    await until_heard(other, "execution_cached")
    return other, first


async def until_heard(sock: Socket, type_: str) -> None:
    while type_ not in sock.types():
        await sock.next(HANG_BOUND)


async def adopted_through_its_id(r0: Pool, r1: Pool, sid: str | None = None) -> TakenChannel:
    """r0 dies (it may be dead already: `sid` is its channel id to gpu0);
    r1 adopts its jobs and takes over r0's channel to gpu0."""
    sid = sid or r0.balancer.registry.get("gpu0").channel_id  # type: ignore[union-attr]
    await kill(r0)
    r1.clock.advance(PAST_THE_LEASE)
    await beat(r1)  # r0's lease lapsed: r1 adopts the job
    adoption = r1.balancer.adoption
    assert adoption is not None
    [channel] = adoption.taken.held()
    assert (channel.backend.name, channel.base_id) == ("gpu0", sid)
    await asyncio.wait_for(channel.connected.wait(), HANG_BOUND)
    return channel


async def closed_after(r1: Pool, channel: TakenChannel) -> None:
    """Its last adopted job ended: the taken channel closes, and gpu0
    dropped the id."""
    adoption = r1.balancer.adoption
    assert adoption is not None
    await asyncio.wait_for(adoption.taken.settled(), HANG_BOUND)
    assert adoption.taken.held() == []
    assert channel.base_id not in r1.emulators["gpu0"].hub.clients


async def test_frames_sent_after_the_adoption_reach_the_client_once_in_order(
    make_replicas: ReplicaFactory,
) -> None:
    """r0 sent the job and told its start; gpu0 holds it before its first
    node while r0 dies and r1 adopts it; then gpu0 runs it. The client, its
    socket on r2, hears every `executing`, `progress` and preview of the
    run, then the output and the end, each once, in order: as a socket on
    the sender hears a run nobody died during."""
    r0, r1, r2 = await make_replicas(3, backends=1, redis_store=RedisStore)
    whole = await reference(r1)
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()  # the job starts, then holds before its first node
    sock = await connect(r2, "c0")
    prompt_id = await submit(r0, "c0")
    await until_heard(sock, "execution_cached")
    channel = await adopted_through_its_id(r0, r1)
    gpu0.resume()
    frames = await sock.until_done(prompt_id, HANG_BOUND)
    assert shape(sock.frames, prompt_id) == whole
    assert [f for f in frames if isinstance(f, dict) and f["type"] == "progress"], "it has some"
    assert len(gpu0.executed) == 2, "each job ran once"
    await closed_after(r1, channel)
    await sock.ws.close()


async def test_a_start_that_comes_after_the_adoption_is_told_from_the_backend(
    make_replicas: ReplicaFactory,
) -> None:
    """The job waits in gpu0's queue behind another while r0 dies: its
    whole run, from its own `execution_start`, comes through the id r1
    took over, and its client hears it once, in order."""
    r0, r1, r2 = await make_replicas(3, backends=1, redis_store=RedisStore)
    whole = await reference(r1)
    gpu0 = r0.emulators["gpu0"]
    other, first = await holding_gpu0(r1)
    sock = await connect(r2, "c0")
    prompt_id = await submit(r0, "c0")  # queued behind it
    channel = await adopted_through_its_id(r0, r1)
    gpu0.resume()
    await other.until_done(first, HANG_BOUND)
    await sock.until_done(prompt_id, HANG_BOUND)
    assert shape(sock.frames, prompt_id) == whole
    assert shape(other.frames, first) == whole
    assert gpu0.executed[1:] == [first, prompt_id], "each ran once"
    await closed_after(r1, channel)
    await other.ws.close()
    await sock.ws.close()


async def test_a_replica_back_from_a_stall_sends_under_a_fresh_id(
    make_replicas: ReplicaFactory,
) -> None:
    """r0 stalls past its lease while gpu0 holds its job: r1 adopts the job
    and takes over r0's channel id. r0, back, learns its lease was lost and
    reconnects under a fresh id, so the next job it sends is heard whole by
    its client (under the old id its events would go to r1, which relays
    only the jobs it adopted)."""
    r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore)
    whole = await reference(r0)
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    sock = await connect(r1, "c0")
    first = await submit(r0, "c0")
    await until_heard(sock, "execution_cached")
    old = r0.balancer.registry.get("gpu0").channel_id  # type: ignore[union-attr]
    r0.clock.advance(PAST_THE_LEASE)  # r0 stalls past its lease
    await beat(r1)  # r1 adopts the job and takes over r0's id
    adoption = r1.balancer.adoption
    assert adoption is not None
    assert [c.base_id for c in adoption.taken.held()] == [old]
    await beat(r0)  # back: its lease was lost
    await r0.channels_up(["gpu0"])
    assert r0.balancer.registry.get("gpu0").channel_id not in (None, old)  # type: ignore[union-attr]
    gpu0.resume()
    await r1.settle([first])
    second = await submit(r0, "c0")
    await sock.until_done(second, HANG_BOUND)
    assert shape(sock.frames, second) == whole
    assert gpu0.executed[1:] == [first, second], "each ran once"
    await sock.ws.close()


def gap_job() -> dict[str, Any]:
    """An output node first (its `executed` comes early), then a node with
    `progress` and binary frames (SaveImageWebsocket)."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": next(COLORS)},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "g"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "4": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["3", 0]}},
    }


async def through_node(r: Pool, sock: Socket, prompt_id: str) -> str:
    """gpu0 runs the job's next node, then holds before the one after (as
    `sock`, which hears the job, tells); that node."""
    gpu0 = r.emulators["gpu0"]
    gpu0.resume()
    gpu0.pause()
    node = None
    while True:
        f = await sock.next(HANG_BOUND)
        if not isinstance(f, dict) or f["data"].get("prompt_id") != prompt_id:
            continue
        if f["type"] == "executing":
            node = f["data"]["node"]
        elif f["type"] == "progress_state" and node is not None:
            finished = f["data"]["nodes"].get(node, {}).get("state") == "finished"
            if finished:
                return str(node)


async def test_a_run_begun_while_nobody_held_the_id_is_told_its_start_and_missed_output(
    make_replicas: ReplicaFactory,
) -> None:
    """The job waits behind another while r0 dies; it starts and runs its
    first two nodes (its output node among them) while nobody holds r0's
    id (a socket of the test's holds it, then goes: those frames are lost);
    r1 adopts it, and gpu0 runs the rest. Its client hears an
    `execution_start` (nobody had recorded one), every frame of the nodes
    run after the adoption, then the output it missed (from history) and
    the end: each once, in order."""
    r0, r1, r2 = await make_replicas(3, backends=1, redis_store=RedisStore)
    whole, previews = await reference(r1, gap_job)
    gpu0 = r0.emulators["gpu0"]
    other, first = await holding_gpu0(r1)
    sock = await connect(r2, "c0")
    prompt_id = await submit(r0, "c0", gap_job)  # queued behind it
    sid = r0.balancer.registry.get("gpu0").channel_id  # type: ignore[union-attr]
    await kill(r0)
    url = str(r0.servers["gpu0"].make_url(f"/ws?clientId={sid}"))
    spy = Socket(await r1.client.session.ws_connect(url))  # holds r0's id for a while
    for _ in range(4):  # the first job's four nodes; then the job starts and holds
        await through_node(r1, other, first)
    assert [await through_node(r0, spy, prompt_id) for _ in range(2)] == ["1", "2"]
    assert "executed" in spy.types()  # node 2's, heard by nobody but the spy
    gone = gpu0.hub.clients[str(sid)].gone
    await spy.ws.close()
    await asyncio.wait_for(gone.wait(), HANG_BOUND)
    channel = await adopted_through_its_id(r0, r1, sid)
    gpu0.resume()
    await sock.until_done(prompt_id, HANG_BOUND)
    heard, binary = shape(sock.frames, prompt_id)
    after = whole.index(("executing", "3", None)) - 1  # node 3's first frame
    assert whole[after][0] == "progress_state"
    end = whole.index(("execution_success", None, None))
    told = [("executed", "2", None), *whole[end:]]  # from history
    assert heard == [("execution_start", None, None), *whole[after:end], *told]
    assert binary == previews, "every preview, sent after the adoption"
    assert gpu0.executed[1:] == [first, prompt_id], "each ran once"
    await closed_after(r1, channel)
    await other.ws.close()
    await sock.ws.close()
