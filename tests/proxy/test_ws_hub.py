"""The client hub's delivery: per-socket order, a job's own frames at once,
broadcasts in one write per turn, slow clients dropped, the pool-wide status
paced and sliced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast

import aiohttp
from aiohttp import web
from support import FakeClock, PoolFactory

from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_socket import MAX_UNSENT, ws_frame
from balancer.proxy.ws_status import STATUS_SLICE


class Transport(asyncio.WriteTransport):
    """Records each write; `unsent` is what the kernel has not taken yet."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.unsent = 0
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def texts(transport: Transport) -> list[Any]:
    """Decode the unmasked text frames of every write, in order."""
    out, data = [], b"".join(transport.writes)
    while data:
        size, at = data[1] & 0x7F, 2
        if size == 126:
            size, at = int.from_bytes(data[2:4], "big"), 4
        out.append(json.loads(data[at : at + size]))
        data = data[at + size :]
    return out


def socket(hub: ClientHub, sid: str, tenant: str | None = None) -> Transport:
    transport = Transport()
    ws = cast(web.WebSocketResponse, object())
    hub.connect(sid, ws, transport, tenant, sees_all=tenant is None)
    return transport


async def turn() -> None:
    await asyncio.sleep(0)


async def test_broadcasts_take_one_write_per_turn_in_order_with_status_last() -> None:
    hub = ClientHub()
    a, b = socket(hub, "a"), socket(hub, "b")
    hub.to_owner("a", None, json.dumps({"type": "executing", "data": {"node": "1"}}))
    assert [m["type"] for m in texts(a)] == ["executing"]  # a job's own frame: at once
    hub.set_queue_remaining(3)
    hub.broadcast_owned(None, json.dumps({"type": "progress", "data": {"value": 1}}))
    await turn()
    assert len(a.writes) == 2 and len(b.writes) == 1
    assert [m["type"] for m in texts(a)] == ["executing", "progress", "status"]
    assert [m["type"] for m in texts(b)] == ["progress", "status"]
    assert texts(b)[-1]["data"]["status"]["exec_info"]["queue_remaining"] == 3
    hub.set_queue_remaining(3)  # unchanged: nothing more is sent
    await turn()
    assert len(a.writes) == 2


async def test_a_tenant_socket_misses_another_tenants_broadcasts() -> None:
    hub = ClientHub()
    alice, bob, everyone = socket(hub, "a", "alice"), socket(hub, "b", "bob"), socket(hub, "c")
    hub.broadcast_owned("alice", json.dumps({"type": "progress", "data": {}}))
    await turn()
    assert alice.writes and everyone.writes and not bob.writes


async def test_a_client_that_stops_reading_is_dropped_and_the_others_are_served() -> None:
    hub = ClientHub()
    stuck, fine = socket(hub, "stuck"), socket(hub, "fine")
    stuck.unsent = MAX_UNSENT + 1
    hub.broadcast_owned(None, b"\x00" * 100)
    await turn()
    assert stuck.aborted and not fine.aborted
    hub.broadcast_owned(None, b"\x01")
    await turn()
    assert len(stuck.writes) == 1 and fine.writes[-1] == ws_frame(b"\x01")


async def test_sockets_do_not_negotiate_compression(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    async with pool.client.session.ws_connect(
        pool.client.make_url("/ws?clientId=z"), compress=15
    ) as ws:
        assert ws.compress == 0
        first = await ws.receive(timeout=5)
        assert first.type == aiohttp.WSMsgType.TEXT and json.loads(first.data)["type"] == "status"


def statuses(transport: Transport) -> list[int]:
    return [
        m["data"]["status"]["exec_info"]["queue_remaining"]
        for m in texts(transport)
        if m["type"] == "status"
    ]


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait turn by turn until `check()`; the timeout only bounds a hang."""
    async with asyncio.timeout(10.0):
        while not check():
            await asyncio.sleep(0.001)
    assert check(), what


async def test_count_changes_within_the_pace_make_one_status_with_the_last_count() -> None:
    clock = FakeClock()
    hub = ClientHub(status_every=0.01, now=clock)  # the clock stands: every change is in the pace
    a = socket(hub, "a")
    hub.set_queue_remaining(1)  # none sent lately: a round begins at once
    hub.set_queue_remaining(2)
    hub.set_queue_remaining(3)
    await until(lambda: statuses(a)[-1:] == [3], "the last count")
    assert statuses(a) == [3]  # the round writes the count of its turn
    hub.set_queue_remaining(4)  # in the pace: when it is up
    hub.set_queue_remaining(5)
    await until(lambda: statuses(a)[-1:] == [5], "the last count")
    assert statuses(a) == [3, 5]
    hub.set_queue_remaining(5)  # no change: nothing more
    hub.broadcast_owned(None, json.dumps({"type": "progress", "data": {}}))
    await until(lambda: texts(a)[-1]["type"] == "progress", "the event")
    assert statuses(a) == [3, 5]


async def test_a_status_round_reaches_a_slice_of_sockets_per_turn_after_their_events() -> None:
    hub = ClientHub()
    socks = [socket(hub, f"s{i}") for i in range(STATUS_SLICE + 5)]
    hub.set_queue_remaining(4)
    hub.broadcast_owned(None, json.dumps({"type": "progress", "data": {}}))
    await turn()
    reached = [s for s in socks if statuses(s) == [4]]
    assert reached == socks[:STATUS_SLICE]  # in connection order
    assert all(texts(s)[0]["type"] == "progress" for s in socks)  # events go first
    await until(lambda: all(statuses(s) == [4] for s in socks), "every socket's status")
    assert all(len(s.writes) == 1 for s in reached)  # its events and status in one write


def types(transport: Transport) -> list[str]:
    return [m["type"] for m in texts(transport)]


async def test_a_jobs_frame_is_not_held_behind_a_status_round_to_every_socket() -> None:
    hub = ClientHub()
    socks = [socket(hub, f"s{i}") for i in range(3 * STATUS_SLICE)]
    client, sid = socks[-1], f"s{3 * STATUS_SLICE - 1}"  # connected last: reached last
    hub.set_queue_remaining(1)  # a round to every socket begins
    hub.broadcast_owned(None, json.dumps({"type": "progress", "data": {}}))
    await turn()
    assert statuses(socks[0]) == [1] and statuses(client) == []  # the round is under way
    hub.broadcast_owned(None, json.dumps({"type": "progress_state", "data": {}}))
    hub.to_owner(sid, None, json.dumps({"type": "executing", "data": {}}))
    # Written as it was sent, after the broadcast sent before it, ahead of
    # the round's slice for this socket and of the next flush.
    assert types(client) == ["progress", "progress_state", "executing"]
    assert types(socks[0]) == ["progress", "status"]  # the broadcast waits for the flush
    await until(lambda: statuses(client) == [1], "the round to reach the client")
    assert types(client) == ["progress", "progress_state", "executing", "status"]


async def test_a_preview_for_one_client_is_written_at_once_after_its_earlier_frames() -> None:
    hub = ClientHub()
    client = socket(hub, "c")
    hub.broadcast_owned(None, json.dumps({"type": "progress", "data": {}}))
    hub.to_previewers("c", None, b"\x00\x00\x00\x01preview", metadata=False)
    assert b"".join(client.writes) == ws_frame(
        json.dumps({"type": "progress", "data": {}})
    ) + ws_frame(b"\x00\x00\x00\x01preview")
    await turn()
    assert len(client.writes) == 1  # nothing was left for the flush


async def test_a_status_round_never_sends_a_socket_a_count_older_than_one_it_was_sent() -> None:
    hub = ClientHub()
    socks = [socket(hub, f"s{i}") for i in range(3 * STATUS_SLICE)]
    client, sid = socks[-1], f"s{3 * STATUS_SLICE - 1}"  # reached last
    hub.set_queue_remaining(1)  # a round to every socket begins
    await turn()
    assert statuses(socks[0]) == [1] and statuses(client) == []
    hub.set_queue_remaining(0)  # the client's job ends: it is sent the new count at once
    hub.count_to_owner(sid, None)
    assert statuses(client) == [0]
    # The first slice was sent 1: the round after tells it the count of now.
    await until(lambda: statuses(socks[0]) == [1, 0], "the round after it")
    assert all(statuses(s) == [1, 0] for s in socks[:STATUS_SLICE])
    # The rest of the first round carried the count of its turn, 0, which
    # the sockets it had yet to reach held already (from their first
    # message), the client too: nothing was written to them.
    assert all(statuses(s) == [] for s in socks[STATUS_SLICE:-1])
    assert statuses(client) == [0]


async def test_after_a_round_the_count_changed_over_only_the_sockets_sent_another_go_again() -> (
    None
):
    clock = FakeClock()
    hub = ClientHub(status_every=0.01, now=clock)  # the clock stands: rounds are paced
    socks = [socket(hub, f"s{i}") for i in range(3 * STATUS_SLICE)]
    first, second, third = (socks[i * STATUS_SLICE : (i + 1) * STATUS_SLICE] for i in range(3))
    hub.set_queue_remaining(1)  # a round begins at once
    await turn()
    hub.set_queue_remaining(2)  # a job starts while the round is under way
    await turn()
    hub.set_queue_remaining(1)  # and ends: the count is back
    await until(lambda: all(statuses(s) == [2, 1] for s in second), "the round after it")
    assert all(statuses(s) == [1] for s in first + third)  # idle sockets are not written again
    hub.broadcast_owned(None, json.dumps({"type": "progress", "data": {}}))
    await until(lambda: all(types(s)[-1] == "progress" for s in socks), "the event")
    assert all(statuses(s) == [1] for s in first + third)


async def test_a_clients_count_sent_among_its_jobs_events_is_not_sent_again_by_a_round() -> None:
    clock = FakeClock()
    hub = ClientHub(status_every=0.01, now=clock)
    idle, client = socket(hub, "idle"), socket(hub, "c")
    hub.set_queue_remaining(1)  # a round begins at once
    await until(lambda: statuses(idle) == [1] and statuses(client) == [1], "the round")
    hub.set_queue_remaining(0)  # the client's job ends: in the pace, a round follows
    hub.count_to_owner("c", None)
    assert statuses(client) == [1, 0]
    await until(lambda: statuses(idle) == [1, 0], "the round after it")
    assert statuses(client) == [1, 0]
