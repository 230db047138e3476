"""Execution results against recorded history and queue shapes; cache; txt2img; errors."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from PIL import Image

from .emu_helpers import emulator_of, post_prompt, run_prompt, transcript, workflow


def _shape(value: Any) -> Any:
    """Keys and value types, recursively (timestamps, ids and numbers differ by run)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _events(entry: dict[str, Any]) -> list[str]:
    return [event for event, _ in entry["status"]["messages"]]


async def test_fast_history_matches_recording(client: TestClient[Any, Any]) -> None:
    recorded = transcript("history_fast.json")["body"]
    (recorded_entry,) = recorded.values()
    prompt = recorded_entry["prompt"][2]
    entry = await run_prompt(client, prompt, client_id=recorded_entry["prompt"][3]["client_id"])
    assert _shape(entry) == _shape(recorded_entry)
    assert entry["prompt"][2:] == recorded_entry["prompt"][2:]
    assert entry["outputs"]["3"]["images"] == [
        {"filename": "fast_00001_.png", "subfolder": "", "type": "output"}
    ]
    assert entry["meta"] == recorded_entry["meta"]
    assert _events(entry) == _events(recorded_entry)


async def test_cached_resubmit_points_at_same_file(client: TestClient[Any, Any]) -> None:
    recorded = transcript("history_fast_cached_resubmit.json")["body"]
    (recorded_entry,) = recorded.values()
    first = await run_prompt(client, workflow("fast.json"))
    again = await run_prompt(client, workflow("fast.json"))
    assert again["outputs"] == first["outputs"]
    assert again["status"]["messages"][1][1]["nodes"] == ["1", "2", "3"]
    assert _shape(again) == _shape(recorded_entry) | {"prompt": _shape(again["prompt"])}
    nonce = workflow("fast.json")
    nonce["2"]["inputs"]["_nonce"] = 123  # an unknown input key defeats the cache
    third = await run_prompt(client, nonce)
    assert third["status"]["messages"][1][1]["nodes"] == ["1"]
    assert third["outputs"]["3"]["images"][0]["filename"] == "fast_00002_.png"


async def test_runtime_error_history(client: TestClient[Any, Any]) -> None:
    recorded = transcript("history_runtime_error.json")["history"]
    (recorded_entry,) = recorded.values()
    entry = await run_prompt(client, workflow("runtime_error.json"), client_id="c")
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert _events(entry) == _events(recorded_entry)
    error = entry["status"]["messages"][2][1]
    recorded_error = recorded_entry["status"]["messages"][2][1]
    assert set(error) == set(recorded_error)
    for key in ("node_id", "node_type", "executed", "exception_message", "exception_type"):
        assert error[key] == recorded_error[key], key
    assert set(error["current_inputs"]) == set(recorded_error["current_inputs"])
    assert entry["outputs"] == {} and entry["meta"] == {}


async def test_queue_shape_and_queue_remaining(client: TestClient[Any, Any]) -> None:
    recorded = transcript("queue_pending.json")["body"]
    emu = emulator_of(client)
    assert await (await client.get("/queue")).json() == transcript("queue_idle.json")["body"]
    assert await (await client.get("/prompt")).json() == transcript("prompt_get_idle.json")["body"]
    emu.pause()
    extra = {"client_id": "c", "auth_token_comfy_org": "secret"}
    answers = [
        await post_prompt(client, workflow("slow.json"), client_id="c", extra_data=dict(extra))
        for _ in range(3)
    ]
    queue = await (await client.get("/queue")).json()
    assert _shape(queue["queue_pending"][0][:3]) == _shape(recorded["queue_pending"][0][:3])
    assert len(queue["queue_running"]) + len(queue["queue_pending"]) == 3
    item = (queue["queue_running"] or queue["queue_pending"])[0]
    assert item[3]["auth_token_comfy_org"] == "secret"  # 0.3.64 leaks tokens in /queue
    remaining = await (await client.get("/api/prompt")).json()
    assert remaining == {"exec_info": {"queue_remaining": 3}}
    delete = await client.post("/queue", json={"delete": [answers[2]["prompt_id"]]})
    assert delete.status == 200 and await delete.read() == b""
    await client.post("/queue", json={"clear": True})
    emu.resume()
    await emu.wait_idle(10)
    history = await (await client.get("/history")).json()
    assert answers[2]["prompt_id"] not in history
    for entry in history.values():
        assert "auth_token_comfy_org" not in entry["prompt"][3]


async def test_history_paging_and_deletion(client: TestClient[Any, Any]) -> None:
    ids = [
        (await post_prompt(client, workflow("fast.json") | {}, prompt_id=f"p{i}"))["prompt_id"]
        for i in range(4)
    ]
    await emulator_of(client).wait_idle(10)

    async def keys(query: str) -> list[str]:
        return list(await (await client.get(f"/history{query}")).json())

    assert await keys("") == ids
    assert await keys("?max_items=2") == ids[2:]
    assert await keys("?max_items=2&offset=1") == ids[1:3]
    assert await keys("?offset=3") == ids[3:]
    assert (await client.get("/history?max_items=x")).status == 500
    assert await (await client.get("/history/unknown")).json() == {}
    await client.post("/history", json={"delete": ["p0"]})
    assert await keys("") == ids[1:]
    await client.post("/history", json={"clear": True})
    assert await keys("") == []


async def test_txt2img_yields_png_and_loads_checkpoint(make_client: Any) -> None:
    client = await make_client()
    emu = emulator_of(client)
    base = emu.memory.used()
    entry = await run_prompt(client, workflow("txt2img.json"))
    assert entry["status"]["status_str"] == "success"
    image = entry["outputs"]["9"]["images"][0]
    resp = await client.get("/view", params=image)
    assert resp.status == 200
    data = await resp.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert emu.memory.used() == base + emu.options.vram_per_checkpoint
    stats = await (await client.get("/system_stats")).json()
    device = stats["devices"][0]
    assert device["vram_free"] == emu.options.vram_total - emu.memory.used()
    await client.post("/free", json={"unload_models": True})
    assert emu.memory.used() == base


async def test_save_image_subfolder_prefix_and_preview(client: TestClient[Any, Any]) -> None:
    prompt = workflow("fast.json")
    prompt["3"]["inputs"]["filename_prefix"] = "a/b"
    prompt["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    entry = await run_prompt(client, prompt)
    assert entry["outputs"]["3"]["images"] == [
        {"filename": "b_00001_.png", "subfolder": "a", "type": "output"}
    ]
    preview = entry["outputs"]["4"]["images"][0]
    assert preview["type"] == "temp" and preview["filename"].startswith("ComfyUI_temp_")
    assert preview["filename"].endswith("_00001_.png") and len(preview["filename"]) == 29
    path = emulator_of(client).dirs.folder("output") / "a" / "b_00001_.png"
    with Image.open(path) as img:
        assert img.size == (64, 64)
        assert img.getpixel((0, 0)) == (255, 255, 254)  # inverted color 1
        assert "prompt" in img.info
