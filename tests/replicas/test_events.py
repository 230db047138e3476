"""Job events reach a client's socket on whichever replica holds it, in the
order a socket on the replica that follows the job gets them."""

from __future__ import annotations

import struct

from support import Pool, colored, workflow

from balancer.replicas.hub import SharedHub
from tests.proxy.test_ws import Message, Socket, connect

from .conftest import ReplicaFactory


async def subscribed(replica: Pool) -> None:
    hub = replica.balancer.hub
    assert isinstance(hub, SharedHub)
    await hub.settled()


def without_status(frames: list[Message]) -> list[Message]:
    return [f for f in frames if not (isinstance(f, dict) and f["type"] == "status")]


async def test_a_client_on_another_replica_gets_every_event_in_order(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    here = await connect(r0, "tab")  # beside the replica that follows the job
    there = await connect(r1, "tab")  # the same client, through another replica
    await subscribed(r1)
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
    await subscribed(r1)
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
    await subscribed(r1)
    gpu0.resume()
    frames = await again.until_done(prompt_id)
    assert "execution_success" in again.types(frames)


async def test_other_clients_get_nothing_of_it(make_replicas: ReplicaFactory) -> None:
    r0, r1 = await make_replicas(2, backends=1)
    mine = await connect(r1, "mine")
    other: Socket = await connect(r1, "other")
    await subscribed(r1)
    prompt_id = (await r0.submit(colored(7), client_id="mine"))["prompt_id"]
    await mine.until_done(prompt_id)
    late = (await r0.submit(colored(8), client_id="other"))["prompt_id"]
    frames = await other.until_done(late)
    assert all(prompt_id not in str(f) for f in frames)
