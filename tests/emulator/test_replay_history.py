"""history_all_max2.json and history_progress_ws.json replayed against the
emulator: the recorded prompts run, and /history answers with the same
entries once ids, numbers, timestamps and output names are normalised."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from recorded import normalise

from .emu_helpers import emulator_of, post_prompt, transcript


def comparable(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry with its queue number, ids and times replaced."""
    _, _, prompt, extra, outputs = entry["prompt"]
    rest = {k: v for k, v in entry.items() if k != "prompt"}
    return normalise({**rest, "prompt": ["<number>", "<prompt_id>", prompt, extra, outputs]})


async def test_progress_ws_history_replays(client: TestClient[Any, Any]) -> None:
    recorded = transcript("history_progress_ws.json")
    (recorded_entry,) = recorded["history"].values()
    prompt, extra = recorded_entry["prompt"][2], recorded_entry["prompt"][3]
    answer = await post_prompt(client, prompt, client_id=extra["client_id"])
    assert set(answer) == set(recorded["post"]["body"])
    assert answer["node_errors"] == recorded["post"]["body"]["node_errors"]
    await emulator_of(client).wait_idle(10)
    history = await (await client.get(f"/history/{answer['prompt_id']}")).json()
    assert comparable(history[answer["prompt_id"]]) == comparable(recorded_entry)


async def test_history_max_items_replays(client: TestClient[Any, Any]) -> None:
    """The last two entries in run order, whole; the prompts shrunk to 64x64."""
    recorded = transcript("history_all_max2.json")
    entries = list(recorded["body"].values())
    first = {**entries[0]["prompt"][2]}
    first["1"] = {**first["1"], "inputs": {**first["1"]["inputs"], "color": 1}}
    ids = []
    for entry in [{"prompt": [0, "", first, {}, []]}, *entries]:
        prompt = entry["prompt"][2]
        prompt["1"]["inputs"].update(width=64, height=64)
        extra = entry["prompt"][3]
        ids.append((await post_prompt(client, prompt, **extra))["prompt_id"])
        await emulator_of(client).wait_idle(10)
    resp = await client.get(recorded["request"].removeprefix("GET "))
    assert resp.status == recorded["status"]
    body = await resp.json()
    assert list(body) == ids[1:]
    assert [comparable(e) for e in body.values()] == [comparable(e) for e in entries]
