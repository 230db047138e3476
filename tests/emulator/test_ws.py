"""WebSocket event order and payload keys against the recorded ws_*.jsonl sessions."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from .emu_helpers import (
    TIMEOUT,
    collect_until_done,
    emulator_of,
    post_prompt,
    receive_json,
    run_prompt,
    transcript_lines,
    workflow,
)


def _summary(message: dict[str, Any]) -> Any:
    """Type, data keys and progress_state node states: what must match, minus ids and times."""
    if message.get("binary"):
        data = message.get("data")
        kind = struct.unpack(">I", data[:4])[0] if data is not None else message["event_type"]
        return ("binary", kind)
    data = message["data"]
    if message["type"] == "progress_state":
        states = {k: (v["value"], v["max"], v["state"]) for k, v in data["nodes"].items()}
        return ("progress_state", states)
    if message["type"] == "status":
        return ("status", data["status"]["exec_info"]["queue_remaining"], "sid" in data)
    return (message["type"], sorted(data))


def _recorded(name: str) -> list[Any]:
    return [_summary(m) for m in transcript_lines(name) if "note" not in m]


CASES = [
    ("fast.json", "ws_fast.jsonl", False),
    ("progress_ws.json", "ws_progress_ws.jsonl", False),
    ("progress_ws.json", "ws_progress_ws_with_feature_flags.jsonl", True),
    ("runtime_error.json", "ws_runtime_error.jsonl", False),
    ("slow.json", "ws_slow.jsonl", False),
]


@pytest.mark.parametrize(("workflow_name", "recording", "flags"), CASES)
async def test_event_sequence_matches_recording(
    client: TestClient[Any, Any], workflow_name: str, recording: str, flags: bool
) -> None:
    async with client.ws_connect("/ws?clientId=me") as ws:
        messages = [await receive_json(ws)]
        if flags:
            await ws.send_str(
                json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
            )
            messages.append(await receive_json(ws))
        answer = await post_prompt(client, workflow(workflow_name), client_id="me")
        messages += await collect_until_done(ws, answer["prompt_id"])
    assert [_summary(m) for m in messages] == _recorded(recording)
    assert messages[0]["data"]["sid"] == "me"
    for message in messages:
        if message.get("binary") and flags:
            (length,) = struct.unpack(">I", message["data"][4:8])
            meta = json.loads(message["data"][8 : 8 + length])
            assert meta == {
                "node_id": "3",
                "prompt_id": answer["prompt_id"],
                "display_node_id": "3",
                "parent_node_id": None,
                "real_node_id": "3",
                "image_type": "image/png",
            }
            assert message["data"][8 + length : 16 + length] == b"\x89PNG\r\n\x1a\n"
        elif message.get("binary"):
            assert message["data"][:16] == bytes.fromhex("000000010000000289504e470d0a1a0a")


async def test_cached_resubmit_events(client: TestClient[Any, Any]) -> None:
    await run_prompt(client, workflow("fast.json"))
    async with client.ws_connect("/ws?clientId=again") as ws:
        messages = [await receive_json(ws)]
        answer = await post_prompt(client, workflow("fast.json"), client_id="again")
        messages += await collect_until_done(ws, answer["prompt_id"])
    assert [_summary(m) for m in messages] == _recorded("ws_fast_cached_resubmit.jsonl")


async def _observe(client: TestClient[Any, Any], body: dict[str, Any]) -> list[Any]:
    async with client.ws_connect("/ws?clientId=observer") as ws:
        messages = [await receive_json(ws)]
        await post_prompt(client, workflow("progress_ws.json"), **body)
        await emulator_of(client).wait_idle(TIMEOUT)
        while True:
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
            if msg.type == WSMsgType.BINARY:
                messages.append({"binary": True, "data": msg.data})
                continue
            parsed = json.loads(msg.data)
            messages.append(parsed)
            if (
                parsed["type"] == "status"
                and parsed["data"]["status"]["exec_info"]["queue_remaining"] == 0
            ):
                return [_summary(m) for m in messages]


async def test_observer_without_client_id_sees_broadcast_progress(
    client: TestClient[Any, Any],
) -> None:
    assert await _observe(client, {}) == _recorded("ws_observer_job_without_client_id.jsonl")


async def test_observer_with_other_client_id_sees_only_status(
    client: TestClient[Any, Any],
) -> None:
    expected = _recorded("ws_observer_job_with_client_id.jsonl")
    assert await _observe(client, {"client_id": "someone-else"}) == expected


async def test_sid_is_uuid_hex_without_client_id(client: TestClient[Any, Any]) -> None:
    async with client.ws_connect("/api/ws") as ws:
        first = await receive_json(ws)
    assert first["type"] == "status"
    sid = first["data"]["sid"]
    assert len(sid) == 32 and int(sid, 16) >= 0


async def test_feature_flags_reply_and_only_first_message(client: TestClient[Any, Any]) -> None:
    features = await (await client.get("/features")).json()
    async with client.ws_connect("/ws") as ws:
        await receive_json(ws)
        await ws.send_str("not json")
        await ws.send_str(json.dumps({"type": "feature_flags", "data": {}}))
        answer = await post_prompt(client, workflow("fast.json"))
        await emulator_of(client).wait_idle(TIMEOUT)
        # the first text message was not feature_flags, so the second gets no reply
        nxt = await receive_json(ws)
        assert nxt["type"] == "status"
    async with client.ws_connect("/ws") as ws:
        await receive_json(ws)
        await ws.send_str(json.dumps({"type": "feature_flags", "data": {}}))
        reply = await receive_json(ws)
    assert reply == {"type": "feature_flags", "data": features}
    assert answer["prompt_id"]


async def test_ksampler_progress_per_step(make_client: Any) -> None:
    client = await make_client()
    prompt = workflow("txt2img.json")
    prompt["3"]["inputs"]["steps"] = 3
    async with client.ws_connect("/ws?clientId=sd") as ws:
        await receive_json(ws)
        answer = await post_prompt(client, prompt, client_id="sd")
        messages = await collect_until_done(ws, answer["prompt_id"])
    progress = [m["data"] for m in messages if m.get("type") == "progress"]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [
        (1, 3, "3"),
        (2, 3, "3"),
        (3, 3, "3"),
    ]
    executing = [m["data"]["node"] for m in messages if m.get("type") == "executing"]
    assert set(executing[:4]) == {"4", "5", "6", "7"}  # dependencies first, any order
    assert executing[4:] == ["3", "8", "9", None]


async def test_a_socket_under_a_gone_sockets_client_id_gets_the_rest_of_its_job(
    client: TestClient[Any, Any],
) -> None:
    """ComfyUI registers a socket under the `clientId` it connects with
    (replacing any socket registered under it) and looks a prompt's
    client_id up at each send (server.py's websocket_handler and send_json;
    comfyui-api.md 8.1). So once a socket is gone, another that connects
    under its id hears the rest of that id's running job: what a replica
    that takes over a dead replica's channel relies on."""
    emu = emulator_of(client)
    emu.pause()  # the run holds before its first node
    async with client.ws_connect("/ws?clientId=taken") as first:
        heard = [await receive_json(first)]
        answer = await post_prompt(client, workflow("progress_ws.json"), client_id="taken")
        while heard[-1]["type"] != "execution_cached":
            heard.append(await receive_json(first))
        gone = emu.hub.clients["taken"].gone
    await asyncio.wait_for(gone.wait(), TIMEOUT)  # its registration dropped
    async with client.ws_connect("/ws?clientId=taken") as second:
        connected = await receive_json(second)
        emu.resume()
        rest = await collect_until_done(second, answer["prompt_id"])
    whole = _recorded("ws_progress_ws.jsonl")
    assert [_summary(m) for m in heard] == whole[: len(heard)]
    assert _summary(connected) == ("status", 1, True)
    assert [_summary(m) for m in rest] == whole[len(heard) :], "the rest, once each, in order"
