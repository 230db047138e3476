"""WebSocket fan-in: each client gets exactly its own jobs' events, from any backend."""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections.abc import Callable
from functools import partial
from itertools import pairwise
from typing import Any

import aiohttp
from support import Pool, PoolFactory, colored, workflow

Message = dict[str, Any] | bytes


class Socket:
    """A test client socket that collects every frame it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[Message] = []

    async def next(self, timeout: float = 5.0) -> Message:
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            frame: Message = json.loads(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            frame = msg.data
        else:
            raise AssertionError(f"socket closed: {msg.type}")
        self.frames.append(frame)
        return frame

    async def until_done(self, prompt_id: str, timeout: float = 10.0) -> list[Message]:
        """Frames up to `executing` with node null for `prompt_id` (the done signal)."""
        start = len(self.frames)
        while True:
            frame = await self.next(timeout)
            if is_done(frame, prompt_id):
                return self.frames[start:]

    def types(self, frames: list[Message] | None = None) -> list[str]:
        return [
            f["type"] for f in (self.frames if frames is None else frames) if isinstance(f, dict)
        ]


def is_done(frame: Message, prompt_id: str) -> bool:
    return (
        isinstance(frame, dict)
        and frame["type"] == "executing"
        and frame["data"].get("node") is None
        and frame["data"].get("prompt_id") == prompt_id
    )


async def connect(pool: Pool, client_id: str | None = None, path: str = "/ws") -> Socket:
    query = f"?clientId={client_id}" if client_id else ""
    sock = Socket(await pool.client.ws_connect(path + query))
    first = await sock.next()
    assert isinstance(first, dict) and first["type"] == "status"
    return sock


def execution_types(frames: list[Message]) -> list[str]:
    skip = {"status", "progress_state", "progress"}
    return [f["type"] for f in frames if isinstance(f, dict) and f["type"] not in skip]


async def test_the_comfyui_example_client_pattern_works(make_pool: PoolFactory) -> None:
    pool = await make_pool(3)
    sock = await connect(pool, "script-1")
    answer = await pool.submit(colored(0x336699), client_id="script-1")
    prompt_id = answer["prompt_id"]
    frames = await sock.until_done(prompt_id)
    assert execution_types(frames) == [
        "execution_start",
        "execution_cached",
        "executing",
        "executing",
        "executing",
        "executed",
        "execution_success",
        "executing",
    ]
    executed = next(f for f in frames if isinstance(f, dict) and f["type"] == "executed")
    image = executed["data"]["output"]["images"][0]
    assert image["subfolder"] == f"@{await pool.owner(prompt_id)}"
    history = await (await pool.client.get(f"/history/{prompt_id}")).json()
    assert history[prompt_id]["outputs"]["3"]["images"][0] == image
    view = await pool.client.get("/view", params=image)
    assert view.status == 200 and (await view.read()).startswith(b"\x89PNG")


def counts_before(frames: list[Message], wanted: Callable[[dict[str, Any]], bool]) -> list[Any]:
    """For each text frame `wanted` picks: the pool count of the frame just
    before it if that one is a `status`, else the type of that frame."""
    texts = [f for f in frames if isinstance(f, dict)]
    return [
        prev["data"]["status"]["exec_info"]["queue_remaining"]
        if prev["type"] == "status"
        else prev["type"]
        for prev, frame in pairwise(texts)
        if wanted(frame)
    ]


async def test_a_clients_jobs_bring_it_the_pool_count_where_comfyui_sends_it(
    make_pool: PoolFactory,
) -> None:
    """As a real ComfyUI does (tests/fixtures/transcripts/ws_fast.jsonl): a
    `status` just before `execution_start`, and one just before `executing`
    null with the count once that job has left the queue, however the status
    to every socket is paced. ComfyScript reads that count at each job's end:
    0 tells it that its queue is empty, so every job it still waits for is
    given up on."""
    pool = await make_pool(1)
    pool.emulators["gpu0"].pause()
    sock = await connect(pool, "script")
    a = (await pool.submit(colored(1), client_id="script"))["prompt_id"]
    b = (await pool.submit(colored(2), client_id="script"))["prompt_id"]
    pool.emulators["gpu0"].resume()
    await sock.until_done(a)
    await sock.until_done(b)
    assert counts_before(sock.frames, lambda f: f["type"] == "execution_start") == [1, 1]
    ends = [counts_before(sock.frames, partial(is_done, prompt_id=p)) for p in (a, b)]
    assert ends == [[1], [0]]  # b was still queued when a ended


async def test_first_message_carries_the_sid_and_the_pool_queue(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    for emulator in pool.emulators.values():
        emulator.pause()
    for i in range(3):
        await pool.submit(colored(i))
    await pool.probe()
    ws = await pool.client.ws_connect("/api/ws")
    first = json.loads((await ws.receive()).data)
    assert re.fullmatch(r"[0-9a-f]{32}", first["data"]["sid"])
    assert first["data"]["status"]["exec_info"]["queue_remaining"] == 3
    named = await pool.client.ws_connect("/ws?clientId=abc")
    assert json.loads((await named.receive()).data)["data"]["sid"] == "abc"


async def test_feature_flags_are_answered_like_comfyui(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    sock = await connect(pool, "ff")
    await sock.ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    reply = await sock.next()
    assert isinstance(reply, dict) and reply["type"] == "feature_flags"
    assert reply["data"]["supports_preview_metadata"] is True
    assert isinstance(reply["data"]["max_upload_size"], int)


async def test_two_clients_on_one_backend_get_only_their_own_events(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    alice, bob = await connect(pool, "alice"), await connect(pool, "bob")
    a = (await pool.submit(colored(1), client_id="alice"))["prompt_id"]
    b = (await pool.submit(colored(2), client_id="bob"))["prompt_id"]
    await alice.until_done(a)
    await bob.until_done(b)
    for sock, mine in ((alice, a), (bob, b)):
        ids = {
            f["data"].get("prompt_id")
            for f in sock.frames
            if isinstance(f, dict) and f["type"] != "status"
        }
        assert ids == {mine}


async def test_one_clients_prompts_on_three_backends_all_report_back(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(3)
    for emulator in pool.emulators.values():
        emulator.pause()  # no job ends (and frees its backend) before all three are placed
    sock = await connect(pool, "wide")
    ids = [(await pool.submit(colored(i), client_id="wide"))["prompt_id"] for i in range(3)]
    assert {await pool.owner(i) for i in ids} == {"gpu0", "gpu1", "gpu2"}
    for emulator in pool.emulators.values():
        emulator.resume()
    done: set[str] = set()
    while done != set(ids):
        frame = await sock.next()
        done |= {i for i in ids if is_done(frame, i)}


async def test_queue_and_history_show_the_clients_own_client_id(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    pool.emulators["gpu0"].pause()
    mine = (await pool.submit(colored(1), client_id="mine"))["prompt_id"]
    anonymous = (await pool.submit(colored(2)))["prompt_id"]
    queue = await (await pool.client.get("/queue")).json()
    extra = {item[1]: item[3] for item in queue["queue_running"] + queue["queue_pending"]}
    assert extra[mine]["client_id"] == "mine"
    assert "client_id" not in extra[anonymous]
    pool.emulators["gpu0"].resume()
    await pool.wait_idle()
    history = await (await pool.client.get("/history")).json()
    assert history[mine]["prompt"][3]["client_id"] == "mine"
    assert "client_id" not in history[anonymous]["prompt"][3]


async def test_history_outlives_a_backend_restart(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    sock = await connect(pool, "keeper")
    prompt_id = (await pool.submit(colored(7), client_id="keeper"))["prompt_id"]
    await sock.until_done(prompt_id)
    before = await (await pool.client.get(f"/history/{prompt_id}")).json()
    await pool.emulators["gpu0"].crash()
    assert pool.emulators["gpu0"].history == {}
    after = await (await pool.client.get(f"/history/{prompt_id}")).json()
    assert after == before and before[prompt_id]["status"]["status_str"] == "success"


async def test_reconnecting_with_the_same_client_id_gets_the_rest_of_its_job(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    pool.emulators["gpu0"].pause()
    first = await connect(pool, "ui-tab")
    prompt_id = (await pool.submit(colored(3), client_id="ui-tab"))["prompt_id"]
    await first.ws.close()
    again = await connect(pool, "ui-tab")
    pool.emulators["gpu0"].resume()
    frames = await again.until_done(prompt_id)
    assert "execution_success" in again.types(frames)


async def test_a_channel_dropping_mid_job_still_ends_the_job_for_its_client(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    emulator = pool.emulators["gpu0"]
    emulator.pause()
    sock = await connect(pool, "patient")
    prompt_id = (await pool.submit(colored(4), client_id="patient"))["prompt_id"]
    emulator.hub.abort_all()  # the balancer's channel breaks; the job goes on
    emulator.resume()
    await emulator.wait_idle(5.0)
    pool.clock.advance(0.5)
    await pool.probe()  # the probe sees the job gone and ends it from history
    frames = await sock.until_done(prompt_id)
    assert "execution_success" in sock.types(frames)
    history = await (await pool.client.get(f"/history/{prompt_id}")).json()
    assert history[prompt_id]["status"]["status_str"] == "success"


async def test_without_client_id_only_broadcast_events_reach_sockets(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    observer = await connect(pool, "observer")
    anonymous = (await pool.submit(workflow("progress_ws")))["prompt_id"]
    # A second, owned job on the same backend: its done signal comes after
    # every frame of the first one (one channel, in order).
    marker = (await pool.submit(colored(1), client_id="observer"))["prompt_id"]
    frames = await observer.until_done(marker)
    first_job = [
        f for f in frames if isinstance(f, bytes) or f["data"].get("prompt_id") in (anonymous, None)
    ]
    types = {f["type"] for f in first_job if isinstance(f, dict)}
    assert types <= {"status", "progress", "progress_state"}
    assert "progress_state" in types
    previews = [f for f in first_job if isinstance(f, bytes)]
    assert previews and all(struct.unpack(">II", f[:8]) == (1, 2) for f in previews)


async def test_previews_follow_each_clients_feature_flags(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    legacy = await connect(pool, "legacy")
    modern = await connect(pool, "modern")
    await modern.ws.send_json(
        {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    )
    await modern.next()  # the feature_flags reply
    jobs = {}
    for name in ("legacy", "modern"):
        jobs[name] = (await pool.submit(workflow("progress_ws"), client_id=name))["prompt_id"]
    legacy_frames = await legacy.until_done(jobs["legacy"])
    modern_frames = await modern.until_done(jobs["modern"])
    legacy_bin = [f for f in legacy_frames if isinstance(f, bytes)]
    modern_bin = [f for f in modern_frames if isinstance(f, bytes)]
    assert legacy_bin and len(legacy_bin) == len(modern_bin)
    assert all(struct.unpack(">II", f[:8]) == (1, 2) for f in legacy_bin)
    assert all(struct.unpack(">I", f[:4]) == (4,) for f in modern_bin)
    for old, new in zip(legacy_bin, modern_bin, strict=True):
        (length,) = struct.unpack(">I", new[4:8])
        meta = json.loads(new[8 : 8 + length])
        assert meta["prompt_id"] == jobs["modern"]
        assert new[8 + length :][:8] == b"\x89PNG\r\n\x1a\n"
        assert old[8:][:8] == b"\x89PNG\r\n\x1a\n"
