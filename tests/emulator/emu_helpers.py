"""Helpers for emulator tests: recorded fixtures, submitting prompts, WebSocket reading."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from balancer.emulator import EMULATOR, Emulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TIMEOUT = 10.0


def workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "workflows" / name).read_text())
    return data


def transcript(name: str) -> Any:
    return json.loads((FIXTURES / "transcripts" / name).read_text())


def transcript_lines(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / "transcripts" / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def emulator_of(client: TestClient[Any, Any]) -> Emulator:
    return client.app[EMULATOR]


async def post_prompt(client: TestClient[Any, Any], prompt: dict[str, Any], **body: Any) -> Any:
    resp = await client.post("/prompt", json={"prompt": prompt, **body})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def run_prompt(client: TestClient[Any, Any], prompt: dict[str, Any], **body: Any) -> Any:
    """Submit, wait until the emulator is idle, return the history entry."""
    answer = await post_prompt(client, prompt, **body)
    await emulator_of(client).wait_idle(TIMEOUT)
    history = await (await client.get(f"/history/{answer['prompt_id']}")).json()
    return history[answer["prompt_id"]]


async def collect_until_done(ws: Any, prompt_id: str) -> list[dict[str, Any]]:
    """Messages (binary ones summarised) until `executing` with node null for prompt_id."""
    messages: list[dict[str, Any]] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        if msg.type == WSMsgType.BINARY:
            messages.append({"binary": True, "data": msg.data})
            continue
        assert msg.type == WSMsgType.TEXT, msg
        parsed = json.loads(msg.data)
        messages.append(parsed)
        data = parsed["data"]
        if (
            parsed["type"] == "executing"
            and data["node"] is None
            and data["prompt_id"] == prompt_id
        ):
            return messages


async def receive_json(ws: Any) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    assert msg.type == WSMsgType.TEXT, msg
    parsed: dict[str, Any] = json.loads(msg.data)
    return parsed
