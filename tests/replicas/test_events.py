"""Job events reach a client's socket on whichever replica holds it, in the
order a socket on the replica that follows the job gets them, from the
moment its handshake was answered: no test here waits for a replica to
subscribe before it submits."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from support import Pool, colored, workflow

from balancer.replicas.hub import SharedHub
from balancer.store.redis import RedisStore
from tests.proxy.test_ws import Message, Socket, connect

from .conftest import ReplicaFactory, first_node, held_at_start, next_executing, published


def without_status(frames: list[Message]) -> list[Message]:
    return [f for f in frames if not (isinstance(f, dict) and f["type"] == "status")]


async def test_a_client_on_another_replica_gets_every_event_in_order(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    here = await connect(r0, "tab")  # beside the replica that follows the job
    there = await connect(r1, "tab")  # the same client, through another replica
    prompt_id = (await r0.submit(workflow("progress_ws"), client_id="tab"))["prompt_id"]
    near = await here.until_done(prompt_id)
    far = await there.until_done(prompt_id)
    assert "execution_success" in here.types(near)
    assert any(isinstance(f, bytes) for f in near), "previews (binary frames) too"
    assert without_status(far) == without_status(near)


async def test_previews_follow_the_feature_flags_of_a_socket_on_another_replica(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    modern = await connect(r1, "modern")
    await modern.ws.send_json(
        {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    )
    await modern.next()  # the feature_flags reply
    prompt_id = (await r0.submit(workflow("progress_ws"), client_id="modern"))["prompt_id"]
    previews = [f for f in await modern.until_done(prompt_id) if isinstance(f, bytes)]
    assert previews and all(struct.unpack(">I", f[:4]) == (4,) for f in previews)


async def test_a_client_that_reconnects_to_another_replica_gets_the_rest(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    gpu0 = r0.emulators["gpu0"]
    gpu0.pause()
    first = await connect(r0, "tab")
    prompt_id = (await r0.submit(colored(6), client_id="tab"))["prompt_id"]
    await first.ws.close()
    again = await connect(r1, "tab")
    gpu0.resume()
    frames = await again.until_done(prompt_id)
    assert "execution_success" in again.types(frames)


async def test_other_clients_get_nothing_of_it(make_replicas: ReplicaFactory) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    mine = await connect(r1, "mine")
    other: Socket = await connect(r1, "other")
    prompt_id = (await r0.submit(colored(7), client_id="mine"))["prompt_id"]
    await mine.until_done(prompt_id)
    late = (await r0.submit(colored(8), client_id="other"))["prompt_id"]
    frames = await other.until_done(late)
    assert all(prompt_id not in str(f) for f in frames)


class SlowToSubscribe:
    """A replica slow to subscribe to a sid's channel (its loop busy, Redis
    far away): its subscription goes to Redis once `gate` opens."""

    def __init__(self, replica: Pool) -> None:
        hub = replica.balancer.hub
        assert isinstance(hub, SharedHub)
        self.pubsub = hub.bus._pubsub
        self.subscribe = self.pubsub.subscribe
        self.pubsub.subscribe = self.slow  # type: ignore[method-assign]
        self.asked = asyncio.Event()
        self.gate = asyncio.Event()

    async def slow(self, *channels: Any) -> Any:
        self.asked.set()
        await self.gate.wait()
        return await self.subscribe(*channels)


async def test_a_handshake_is_answered_once_its_replica_gets_the_sids_frames(
    make_replicas: ReplicaFactory,
) -> None:
    """Pub/sub keeps nothing for a channel nobody listens to: were the
    handshake answered first, a client that then posted through another
    replica would lose its job's first frames (the HA test saw a job heard
    from its last frame on)."""
    r0, r1 = await make_replicas(2, backends=1)
    slow = SlowToSubscribe(r1)
    opening = asyncio.create_task(connect(r1, "tab"))
    await asyncio.wait_for(slow.asked.wait(), 30)
    early = (await r0.submit(colored(1), client_id="tab"))["prompt_id"]
    await r0.done(early)  # its frames went out while r1 did not listen yet
    assert not opening.done(), "the socket is not open before r1 gets its frames"
    slow.gate.set()
    tab = await asyncio.wait_for(opening, 30)
    job = (await r0.submit(colored(2), client_id="tab"))["prompt_id"]
    frames = without_status(await tab.until_done(job))
    # The early job's frames, which no socket got, are kept for the client
    # and come first (journal.py); then every frame of the next one.
    texts = [f for f in frames if isinstance(f, dict)]
    of = [[f for f in texts if f["data"]["prompt_id"] == pid] for pid in (early, job)]
    assert texts == of[0] + of[1]
    for mine in of:
        types = tab.types(mine)
        assert types[0] == "execution_start", "every frame, from the first"
        assert types[-2:] == ["execution_success", "executing"]


async def test_a_client_reconnecting_to_another_replica_is_told_its_jobs_node(
    make_replicas: ReplicaFactory,
) -> None:
    """As ComfyUI tells a socket that opens with its sid which node its
    running prompt is on, so does a replica that does not follow the job."""
    r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore)
    first, prompt_id = await held_at_start(r0, "tab")
    node = await first_node(r0, first)
    await first.ws.close()
    # The client reconnects once its node is shared: r0 sent what it relayed
    # (a reconnect before that is told it live, test_node_hints.py).
    await published(r0)
    again = await connect(r1, "tab")
    hint = await next_executing(again)  # the first node's last frames may come first
    assert hint == {"type": "executing", "data": {"node": node}}
    r0.emulators["gpu0"].resume()
    frames = await again.until_done(prompt_id, 30)
    assert "execution_success" in again.types(frames)
