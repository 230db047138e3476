"""A client that had no socket anywhere while its job ran on gets, on the
socket it opens next (on any replica), the frames it missed: each once, in
order, then the rest live (journal.py). Pub/sub alone keeps nothing for a
channel nobody listens to: before, such a client heard nothing of them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from support import Pool, colored

from balancer.replicas.bus import EventBus, Write
from balancer.replicas.bus_script import Ops
from balancer.replicas.hub import SharedHub
from balancer.store.redis import RedisStore
from tests.proxy.test_ws import Message, Socket, connect

from .conftest import ReplicaFactory, published
from .test_node_hints import HeldWrites

COLORS = iter(range(1, 1 << 24))  # each job its own workflow: none is cached


def job_frames(frames: list[Message], prompt_id: str) -> list[tuple[str, Any, Any]]:
    """The text frames of `prompt_id`: type, node and progress (what two
    runs of one workflow shape, on other colors, have in common)."""
    return [
        (f["type"], f["data"].get("node"), f["data"].get("value"))
        for f in frames
        if isinstance(f, dict) and f["data"].get("prompt_id") == prompt_id
    ]


async def submit(replica: Pool, client_id: str) -> str:
    body = await replica.submit(colored(next(COLORS)), client_id=client_id)
    return str(body["prompt_id"])


async def reference(replica: Pool) -> list[tuple[str, Any, Any]]:
    """Every frame of a job, as a socket open throughout gets them."""
    sock = await connect(replica, "reference")
    prompt_id = await submit(replica, "reference")
    return job_frames(await sock.until_done(prompt_id, 30), prompt_id)


@dataclass
class TabOnR1:
    """Three replicas on one backend; every frame of a job as r0's socket
    open throughout got them; client `tab`'s first socket, on r1, its replay
    read; and r1's hub."""

    r0: Pool
    r1: Pool
    r2: Pool
    whole: list[tuple[str, Any, Any]]
    first: Socket
    hub: SharedHub


async def tab_on_r1(make_replicas: ReplicaFactory) -> TabOnR1:
    r0, r1, r2 = await make_replicas(3, backends=1, redis_store=RedisStore)
    whole = await reference(r0)
    first = await connect(r1, "tab")
    await published(r1)  # its replay read
    hub = r1.balancer.hub
    assert isinstance(hub, SharedHub)
    return TabOnR1(r0, r1, r2, whole, first, hub)


async def closed(replica: Pool, sock: Socket) -> None:
    """`sock` closed, and its replica no longer listens for its client."""
    await sock.ws.close()
    hub = replica.balancer.hub
    assert isinstance(hub, SharedHub)
    await asyncio.wait_for(hub.settled(), 30)


async def started_then_left(follower: Pool, first: Pool) -> tuple[Socket, str]:
    """A job of client `tab` sent through `follower`, held before its first
    node while its only socket, on `first`, heard it start; that socket
    then closed."""
    gpu0 = follower.emulators["gpu0"]
    gpu0.pause()
    sock = await connect(first, "tab")
    prompt_id = await submit(follower, "tab")
    while "execution_cached" not in sock.types():
        await sock.next(30)
    await closed(first, sock)
    return sock, prompt_id


async def test_a_client_that_reconnects_elsewhere_gets_what_it_missed_once_in_order(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1, r2 = await make_replicas(3, backends=1, redis_store=RedisStore)
    whole = await reference(r0)
    first, prompt_id = await started_then_left(r0, r1)
    r0.emulators["gpu0"].resume()
    await r0.done(prompt_id)  # its frames were published while no socket of `tab` was open
    await published(r0)
    again = await connect(r2, "tab")
    missed = job_frames(await again.until_done(prompt_id, 30), prompt_id)
    before = job_frames(first.frames, prompt_id)
    assert before and missed, "some frames heard before, the rest missed"
    assert before + missed == whole
    assert [f[0] for f in missed][-2:] == ["execution_success", "executing"]


async def test_a_client_back_on_the_following_replica_gets_the_missed_then_the_live(
    make_replicas: ReplicaFactory,
) -> None:
    """Reconnected to the replica that follows the job, mid-run: what it
    missed comes first, then that replica's own frames, none twice."""
    r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore)
    whole = await reference(r0)
    first, prompt_id = await started_then_left(r0, r1)
    gpu0 = r0.emulators["gpu0"]
    gpu0.resume()
    gpu0.pause()  # held before a later node: frames missed, more to come
    again = await connect(r0, "tab")
    gpu0.resume()
    rest = job_frames(await again.until_done(prompt_id, 30), prompt_id)
    assert job_frames(first.frames, prompt_id) + rest == whole


async def test_a_second_reconnect_gets_nothing_twice(make_replicas: ReplicaFactory) -> None:
    """Frames a socket was handed are not replayed to the next one."""
    r0, r1, r2 = await make_replicas(3, backends=1, redis_store=RedisStore)
    sock = await connect(r1, "tab")
    prompt_id = await submit(r0, "tab")
    heard = await sock.until_done(prompt_id, 30)
    await published(r1)  # its handed marks written
    await closed(r1, sock)
    again = await connect(r2, "tab")
    later = await submit(r0, "tab")
    frames = await again.until_done(later, 30)
    assert job_frames(heard, prompt_id)
    assert not job_frames(frames, prompt_id), "the first job's frames are not told again"
    assert job_frames(frames, later) == job_frames(heard, prompt_id)


class HeldMarks(HeldWrites):
    """HeldWrites for the script calls that record frames of `sid` as
    handed (a `see` op, bus_script.py) and so every call after them; the
    calls before the first go straight through."""

    def __init__(self, inner: Any, bus: EventBus, sid: str) -> None:
        super().__init__(inner)
        self.mark = bus.journal.seen + sid

    async def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        if "see" in args and self.mark in args:
            return await super().evalsha(*args, **kwargs)
        return await self.inner.evalsha(*args, **kwargs)


@dataclass(frozen=True)
class Read:
    """A write of one op that only reads (a stream nobody has): held, it
    holds every write the bus queued after it, in order."""

    key: str

    def add(self, ops: Ops) -> None:
        ops.add("range", [self.key])

    def applied(self, results: list[Any]) -> None:
        """Nothing waits on it."""


async def test_frames_on_their_way_to_a_socket_that_closes_are_kept_for_the_next(
    make_replicas: ReplicaFactory,
) -> None:
    """A frame another replica sent is recorded as handed only once it was
    written: one that reaches a replica whose socket closes before it is
    written is kept for the client's next socket, on any replica."""
    tab = await tab_on_r1(make_replicas)
    r0, r1, r2, whole, first, hub = tab.r0, tab.r1, tab.r2, tab.whole, tab.first, tab.hub
    held = HeldWrites(hub.bus.redis)  # r1's writes wait, and the frames queued behind them
    hub.bus.redis = held  # type: ignore[assignment]
    hub.bus.write(Read(hub.bus.journal.log + "nobody"))
    await asyncio.wait_for(held.asked.wait(), 30)
    queued, write = asyncio.Event(), hub.bus.write

    def spy(w: Write) -> None:
        write(w)
        queued.set()  # another replica's frames for `tab` reached r1, to write in turn

    hub.bus.write = spy  # type: ignore[method-assign, assignment]
    prompt_id = await submit(r0, "tab")
    await asyncio.wait_for(queued.wait(), 30)
    await closed(r1, first)
    held.gate.set()
    await r0.done(prompt_id)
    await published(r1)
    again = await connect(r2, "tab")
    missed = job_frames(await again.until_done(prompt_id, 30), prompt_id)
    assert job_frames(first.frames, prompt_id) + missed == whole
