"""A backend's room shared between replicas: atomic slots in Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as redis
from support import FakeClock

from balancer.jobs.events import JobEvent
from balancer.jobs.fair import Move
from balancer.replicas.slots import Slots
from balancer.replicas.turn import SharedTurn


@pytest.fixture
async def connections(redis_url: str) -> Any:
    """One connection per replica, as separate processes would have."""
    made = [redis.Redis.from_url(redis_url) for _ in range(5)]
    yield made
    for connection in made:
        await connection.aclose()


def replicas(connections: list[Any], clock: FakeClock, lease: float = 5.0) -> list[Slots]:
    return [
        Slots(connection, lease, clock, "balancer:", f"s{i}")
        for i, connection in enumerate(connections)
    ]


async def test_replicas_racing_for_one_slot_never_both_get_it(connections: list[Any]) -> None:
    a, b = replicas(connections[:2], FakeClock())
    for round_ in range(50):
        backend = f"gpu{round_}"
        won = await asyncio.gather(
            a.take(backend, f"a{round_}", 1), b.take(backend, f"b{round_}", 1)
        )
        assert sorted(won) == [False, True]


async def test_five_replicas_racing_for_two_slots_get_exactly_two(connections: list[Any]) -> None:
    racers = replicas(connections, FakeClock())
    for round_ in range(20):
        takes = (r.take("gpu0", f"r{i}-{round_}", 2) for i, r in enumerate(racers))
        assert sum(await asyncio.gather(*takes)) == 2
        for r in racers:
            for prompt_id in list(r.held):
                await r.give_back(prompt_id)


async def test_a_reservation_nobody_renews_expires_after_the_lease(connections: list[Any]) -> None:
    clock = FakeClock()
    a, b = replicas(connections[:2], clock)
    assert await a.take("gpu0", "p1", 1)
    clock.advance(4.0)
    await a.renew()
    clock.advance(4.0)  # 8 s after the take, 4 s after the renewal
    assert not await b.take("gpu0", "p2", 1)
    assert await b.holders("gpu0") == ["p1"]
    clock.advance(1.5)  # a stopped renewing (killed): its lease ran out
    assert await b.take("gpu0", "p2", 1)
    assert await b.holders("gpu0") == ["p2"]
    await a.renew()  # a late renewal does not bring the expired slot back
    assert await b.holders("gpu0") == ["p2"]


async def test_a_slot_is_given_back_when_its_job_ends(connections: list[Any]) -> None:
    a, b = replicas(connections[:2], FakeClock())
    assert await a.take("gpu0", "p1", 1)
    await a.job_event(JobEvent("p1", "running", "gpu0"))
    assert not await b.take("gpu0", "p2", 1)
    await a.job_event(JobEvent("p1", "completed", "gpu0"))
    assert await b.take("gpu0", "p2", 1)


async def test_taking_again_renews_and_moving_frees_the_old_slot(connections: list[Any]) -> None:
    a, b = replicas(connections[:2], FakeClock())
    assert await a.take("gpu0", "p1", 1)
    assert await a.take("gpu0", "p1", 1)  # the same job: its own slot, not a second one
    assert await a.take("gpu1", "p1", 1)  # taken back and sent elsewhere (work stealing)
    assert await b.take("gpu0", "p2", 1)
    assert a.held == {"p1": "gpu1"}


async def evalsha_calls(connection: Any) -> int:
    stats = await connection.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_full_backend_is_asked_again_once_a_slot_there_is_freed(
    connections: list[Any],
) -> None:
    """A replica that heard no slot freed on a full backend does not ask
    Redis again (each wake-up would); a freed slot's notice wakes it, and
    the next take gets the slot."""
    clock = FakeClock()
    a, b = replicas(connections[:2], clock)
    woken = asyncio.Event()
    await b.subscribe()
    watching = asyncio.create_task(b.watch_freed(woken.set))
    await b.wants_room(True)  # b's jobs wait for room: it is told of slots freed
    try:
        assert await a.take("gpu0", "p1", 1)
        assert not await b.take("gpu0", "p2", 1)
        asked = await evalsha_calls(connections[4])
        for _ in range(5):
            assert not await b.take("gpu0", "p2", 1)
        assert await evalsha_calls(connections[4]) == asked  # known full: not asked
        assert await b.take("gpu1", "p2", 1)  # another backend is asked as before
        await a.give_back("p1")
        async with asyncio.timeout(30):
            await woken.wait()
        assert await b.take("gpu0", "p3", 1)
    finally:
        watching.cancel()
        await b.close()


async def test_a_full_backend_is_asked_again_after_a_while_without_notice(
    connections: list[Any],
) -> None:
    """A dead replica's slot expires with no notice: the replica that found
    the backend full asks again after RECHECK and gets it."""
    clock = FakeClock()
    dead, b = replicas(connections[:2], clock)
    await b.subscribe()
    watching = asyncio.create_task(b.watch_freed(lambda: None))
    await b.wants_room(True)
    try:
        assert await dead.take("gpu0", "x1", 1)
        assert not await b.take("gpu0", "p2", 1)
        clock.advance(5.5)  # past the lease: x1 expired, and nobody said so
        assert await b.take("gpu0", "p2", 1)
    finally:
        watching.cancel()
        await b.close()


async def test_the_tenants_turn_moves_only_with_a_slot_taken(connections: list[Any]) -> None:
    """Binding the head of the rotation takes the slot and moves the turn in
    one step: a replica that finds the backend full leaves the turn as it
    was (another replica never chooses from a turn moved for a job that was
    not sent), and one that read a turn since moved takes no slot."""
    clock = FakeClock()
    turn = SharedTurn(connections[2], "balancer:", clock)
    a, b = replicas(connections[:2], clock)
    carol_to_alice = turn.condition(Move(("carol",), ("alice",)))
    assert carol_to_alice is not None
    await turn.move(None, ("carol",))
    assert await a.take("gpu0", "a1", 1, carol_to_alice) is True
    assert (await turn.read())[0] == ("alice",)
    alice_to_bob = turn.condition(Move(("alice",), ("bob",)))
    assert await b.take("gpu0", "b1", 1, alice_to_bob) is False, "gpu0 is full"
    assert (await turn.read())[0] == ("alice",), "the turn stays alice's"
    assert await b.take("gpu1", "b1", 1, carol_to_alice) == "again", "it moved since"
    assert await b.holders("gpu1") == []
    assert await b.take("gpu1", "b1", 1, alice_to_bob) is True
    assert (await turn.read())[0] == ("bob",)
    past_the_head = turn.condition(Move(("carol",), ("carol",), head=False))
    assert past_the_head is None and await a.take("gpu2", "a2", 1, past_the_head) is True
    assert (await turn.read())[0] == ("bob",)


async def heard_up_to_now(slots: Slots) -> None:
    """Every notice published to `slots` before now has been read (one
    channel, one connection: they come in order, a marker last)."""
    marker = slots.waiters.heard["marker"] + 1
    await slots.redis.publish(slots.waiters.channel, "marker")
    async with asyncio.timeout(30):
        while slots.waiters.heard["marker"] < marker:
            await asyncio.sleep(0.01)


async def test_only_replicas_with_jobs_waiting_are_told_of_a_slot_freed(
    connections: list[Any],
) -> None:
    """A freed slot is announced to the replicas waiting for room, not to
    every replica: b waits and is told; c has nothing waiting and is not;
    b, once a beat finds nothing waiting there, is not told any more; and
    a waiter that stopped renewing (killed) is dropped after its lease."""
    clock = FakeClock()
    a, b, c, dead = replicas(connections[:4], clock)
    watching = []
    for listener in (b, c):
        await listener.subscribe()
        watching.append(asyncio.create_task(listener.watch_freed(lambda: None)))
    try:
        await b.wants_room(True)
        await c.wants_room(False)
        assert await a.take("gpu0", "p1", 1)
        await a.give_back("p1")
        await heard_up_to_now(b)
        await heard_up_to_now(c)
        assert (b.waiters.heard["gpu0"], c.waiters.heard["gpu0"]) == (1, 0)

        await b.wants_room(False)  # its queue emptied: it leaves at its next beat
        await b.renew()
        await dead.wants_room(True)
        clock.advance(5.5)  # dead's entry: one lease, not renewed
        assert await a.take("gpu0", "p2", 1)
        await a.give_back("p2")
        await heard_up_to_now(b)
        assert b.waiters.heard["gpu0"] == 1
        assert await a.redis.zrange(a.waiters.key, 0, -1) == []
    finally:
        for task in watching:
            task.cancel()
        for listener in (b, c):
            await listener.close()
