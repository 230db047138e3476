"""A burst of a client's frames that a replica relays in one loop turn goes
out to Redis in one script call, as one pub/sub message (bus_script.py),
where each frame was a script call and a message of its own: the client
still gets every frame once, in order, on a socket on any replica, and on a
socket that opens later (journal.py)."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as redis
from support import Pool

from balancer.replicas.hub import SharedHub
from balancer.store.redis import RedisStore
from tests.proxy.test_ws import Socket, connect

from .conftest import ReplicaFactory, published

BURST = 40  # frames


def shared(replica: Pool) -> SharedHub:
    hub = replica.balancer.hub
    assert isinstance(hub, SharedHub)
    return hub


def relay_burst(replica: Pool, sid: str, prompt_id: str) -> None:
    """A job's progress, then its end, relayed by `replica` in one loop turn."""
    hub = shared(replica)
    for value in range(BURST):
        data = {"value": value, "max": BURST, "prompt_id": prompt_id, "node": "3"}
        hub.to_owner(sid, None, json.dumps({"type": "progress", "data": data}))
    end = {"node": None, "display_node": None, "prompt_id": prompt_id}
    hub.to_owner(sid, None, json.dumps({"type": "executing", "data": end}))


async def heard(sock: Socket, prompt_id: str) -> list[tuple[str, str, Any]]:
    """What `sock` gets up to `prompt_id`'s end: the frames of every burst
    (which burst, which frame), status frames left out."""
    frames = await sock.until_done(prompt_id, 30)
    return [
        (f["data"]["prompt_id"], f["type"], f["data"].get("value"))
        for f in frames
        if isinstance(f, dict) and f["type"] != "status"
    ]


def of(prompt_id: str) -> list[tuple[str, str, Any]]:
    """A burst as a socket hears it."""
    return [(prompt_id, "progress", v) for v in range(BURST)] + [(prompt_id, "executing", None)]


async def calls(client: redis.Redis) -> dict[str, int]:
    """How many times Redis ran each command so far (scripts' own included)."""
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_a_burst_is_one_script_call_and_reaches_every_socket_once_in_order(
    make_replicas: ReplicaFactory, redis_url: str
) -> None:
    r0, r1 = await make_replicas(2, backends=1, redis_store=RedisStore)
    here, there = await connect(r0, "tab"), await connect(r1, "tab")
    for replica in (r0, r1):
        await published(replica)  # the sockets' replays read
    client = redis.Redis.from_url(redis_url)
    try:
        before = await calls(client)
        relay_burst(r0, "tab", "p1")
        await published(r0)
        assert await heard(there, "p1") == of("p1"), "on another replica: once, in order"
        await published(r1)  # its mark written
        after = await calls(client)
    finally:
        await client.aclose()
    assert await heard(here, "p1") == of("p1"), "on the relaying replica: once, in order"
    ran = {name: after.get(name, 0) - before.get(name, 0) for name in ("evalsha", "publish")}
    # r0 keeps and publishes the burst, r1 marks it handed: a call each.
    assert ran == {"evalsha": 2, "publish": 1}
    relay_burst(r1, "tab", "p2")  # nothing of the first burst comes again
    for sock in (here, there):
        assert await heard(sock, "p2") == of("p2")


async def test_a_burst_no_socket_heard_is_replayed_once_in_order_on_another_replica(
    make_replicas: ReplicaFactory,
) -> None:
    r0, r1, r2 = await make_replicas(3, backends=1, redis_store=RedisStore)
    relay_burst(r0, "tab", "p1")  # no socket of `tab` anywhere
    await published(r0)
    late = await connect(r1, "tab")
    relay_burst(r0, "tab", "p2")  # live, after the replay
    assert await heard(late, "p2") == of("p1") + of("p2")
    await late.ws.close()
    await shared(r1).settled()
    again = await connect(r2, "tab")
    relay_burst(r0, "tab", "p3")
    assert await heard(again, "p3") == of("p3"), "nothing handed before comes again"
