"""behaviour_interrupt_variants.json and queue_delete_running_and_clear.json
replayed against the emulator. The recorded job is slow_blur.json, whose
ImageBlur node takes ~11 s and cannot be interrupted (ComfyUI checks its flag
between nodes). Here the test holds that node open until it has made its
requests, the same situation without the wait, and the image is 64x64 (its
size changes nothing checked)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from .emu_helpers import TIMEOUT, emulator_of, post_prompt, receive_json, transcript, workflow

MARKER = "replay_marker"


def slow_blur() -> dict[str, Any]:
    prompt = workflow("slow_blur.json")
    prompt["1"]["inputs"].update(width=64, height=64)
    return prompt


def hold_blur(client: TestClient[Any, Any]) -> tuple[asyncio.Event, asyncio.Event]:
    """ImageBlur waits for `release` once it has started (`started`)."""
    emu = emulator_of(client)
    started, release = asyncio.Event(), asyncio.Event()
    original = emu.registry["ImageBlur"]

    async def held(ctx: Any, inputs: dict[str, Any]) -> Any:
        started.set()
        await release.wait()
        return await original.run(ctx, inputs)

    emu.registry["ImageBlur"] = replace(original, run=held)
    return started, release


def variant(name: str) -> dict[str, Any]:
    cases = transcript("behaviour_interrupt_variants.json")["cases"]
    case: dict[str, Any] = next(c for c in cases if c["case"] == name)
    return case


async def events_until_done(ws: Any, prompt_id: str) -> list[dict[str, Any]]:
    events = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        if msg.type != WSMsgType.TEXT:
            continue
        event = json.loads(msg.data)
        events.append(event)
        if event["type"] == "executing" and event["data"] == {"node": None, "prompt_id": prompt_id}:
            return events


def recorded_body(request: dict[str, Any]) -> bytes | None:
    body = request["request_body"]
    return None if body is None else body.encode()


@pytest.mark.parametrize(
    "name", [c["case"] for c in transcript("behaviour_interrupt_variants.json")["cases"]]
)
async def test_interrupt_variant_replays(client: TestClient[Any, Any], name: str) -> None:
    case = variant(name)
    started, release = hold_blur(client)
    async with client.ws_connect("/ws?clientId=me") as ws:
        await receive_json(ws)
        prompt_id = (await post_prompt(client, slow_blur(), client_id="me"))["prompt_id"]
        await asyncio.wait_for(started.wait(), TIMEOUT)
        for request in case["requests"]:
            body = recorded_body(request)
            if body is not None:
                body = body.replace(case["running_prompt_id"].encode(), prompt_id.encode())
            if "not_running" in name:  # a finished job's id, then an unknown one
                body = json.dumps({"prompt_id": f"other-{len(body or b'')}"}).encode()
            headers = {} if body is None else {"Content-Type": "application/json"}
            resp = await client.post("/interrupt", data=body or b"", headers=headers)
            assert (resp.status, await resp.read()) == (request["status"], b"")
            queue = await (await client.get("/queue")).json()
            assert [item[1] for item in queue["queue_running"]] == [prompt_id]
            assert queue["queue_pending"] == case["queue_right_after"]["pending"]
        release.set()
        events = await events_until_done(ws, prompt_id)
    entry = (await (await client.get(f"/history/{prompt_id}")).json())[prompt_id]
    recorded = case["history_status"]
    assert entry["status"]["status_str"] == recorded["status_str"]
    assert entry["status"]["completed"] == recorded["completed"]
    assert [m[0] for m in entry["status"]["messages"]] == [m[0] for m in recorded["messages"]]
    assert (entry["outputs"] == {}) == (case["history_outputs"] == {})
    kinds = [e["type"] for e in events if e["type"] != "executing" or e["data"]["node"] is None]
    recorded_kinds = [e["type"] for e in case["ws_events_with_client_id"] if "node" not in e]
    expected = ["execution_start", *recorded_kinds[1:]]
    assert [k for k in kinds if k in set(expected)] == expected
    if case["interrupted"]:
        stop = next(e["data"] for e in events if e["type"] == "execution_interrupted")
        recorded_stop = recorded["messages"][-1][1]
        keys = ("node_id", "node_type", "executed")
        assert {k: stop[k] for k in keys} == {k: recorded_stop[k] for k in keys}
    nodes = [e["data"]["node"] for e in events if e["type"] == "executing"]
    assert nodes == [
        e.get("node", None) for e in case["ws_events_with_client_id"] if e["type"] == "executing"
    ]


async def frames_until_marker(ws: Any) -> list[int]:
    """queue_remaining of the status frames before the marker the test sent itself."""
    counts = []
    while True:
        event = await receive_json(ws)
        if event["type"] == MARKER:
            return counts
        if event["type"] == "status":
            counts.append(event["data"]["status"]["exec_info"]["queue_remaining"])


async def test_queue_delete_and_clear_replay(client: TestClient[Any, Any]) -> None:
    recorded = transcript("queue_delete_running_and_clear.json")
    letter_of = {pid: letter for letter, pid in recorded["ids"].items()}
    emu = emulator_of(client)
    started, release = hold_blur(client)
    ids: dict[str, str] = {}
    numbers: dict[str, int] = {}

    async def queue_as_letters() -> dict[str, Any]:
        queue = await (await client.get("/queue")).json()
        return {
            "running": [letter_of_live[item[1]] for item in queue["queue_running"]],
            "pending": [
                [item[0] - numbers["A"], letter_of_live[item[1]]] for item in queue["queue_pending"]
            ],
        }

    def recorded_letters(queue: dict[str, Any]) -> dict[str, Any]:
        base = recorded["queue_before"]["pending"][0][0] - 1
        return {
            "running": [letter_of[pid] for pid in queue["running"]],
            "pending": [[number - base, letter_of[pid]] for number, pid in queue["pending"]],
        }

    async with client.ws_connect("/ws?clientId=observer") as ws:
        await receive_json(ws)
        for letter in "ABCDE":
            answer = await post_prompt(client, slow_blur(), client_id="observer")
            ids[letter], numbers[letter] = answer["prompt_id"], answer["number"]
        letter_of_live = {pid: letter for letter, pid in ids.items()}
        await asyncio.wait_for(started.wait(), TIMEOUT)
        assert await queue_as_letters() == recorded_letters(recorded["queue_before"])
        emu.hub.to_client("observer", MARKER, {})
        await frames_until_marker(ws)
        for step in recorded["steps"]:
            body = step["request_body"]
            if isinstance(body, dict) and "delete" in body:
                body = {"delete": [ids.get(letter_of.get(p, ""), p) for p in body["delete"]]}
            if step["step"] == "delete_sole_pending_F":
                answer = await post_prompt(client, slow_blur(), client_id="observer")
                ids["F"], letter_of_live[answer["prompt_id"]] = answer["prompt_id"], "F"
                after_f = recorded_letters(recorded["F_submitted_after_clear_queue"])
                assert await queue_as_letters() == after_f
                emu.hub.to_client("observer", MARKER, {})
                await frames_until_marker(ws)
                body = {"delete": [ids["F"]]}
            data = body if isinstance(body, str) else json.dumps(body)
            resp = await client.post("/queue", data=data.encode())
            assert resp.status == step["status"], step["step"]
            text = await resp.text()
            assert (text or None) == step["body"], step["step"]
            if step["content_type"] is not None:
                assert resp.content_type == step["content_type"].split(";")[0]
            assert await queue_as_letters() == recorded_letters(step["queue_after"]), step["step"]
            emu.hub.to_client("observer", MARKER, {})
            expected_counts = [f["queue_remaining"] for f in step["ws_status_frames_after"]]
            assert await frames_until_marker(ws) == expected_counts, step["step"]
        release.set()
        await emu.wait_idle(TIMEOUT)
    for letter, outcome in recorded["history_after_A_finished"].items():
        entry = await (await client.get(f"/history/{ids[letter]}")).json()
        assert (entry[ids[letter]]["status"]["status_str"] if entry else "absent") == (
            outcome if outcome == "success" else "absent"
        ), letter
    idle = recorded["clear_false_when_idle"]
    resp = await client.post("/queue", json=idle["request_body"])
    assert (resp.status, await resp.read()) == (idle["status"], b"")
