"""Interrupt, pause/resume, crash, faults, VRAM and the catalogue routes."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from balancer.bench.harness import free_port
from balancer.emulate import serve_emulator
from balancer.emulator import EmulatorOptions, add_emulator_arguments, options_from_args
from balancer.emulator.frontend import core_extensions, web_root

from .emu_helpers import (
    TIMEOUT,
    emulator_of,
    post_prompt,
    receive_json,
    run_prompt,
    transcript,
    workflow,
)


async def _wait_event(ws: Any, event: str, prompt_id: str) -> dict[str, Any]:
    while True:
        message = await receive_json(ws)
        if message["type"] == event and message["data"].get("prompt_id") == prompt_id:
            return message


async def test_interrupt_targets_only_the_running_prompt(client: TestClient[Any, Any]) -> None:
    emu = emulator_of(client)
    emu.pause()
    async with client.ws_connect("/ws?clientId=me") as ws:
        await receive_json(ws)
        a = (await post_prompt(client, workflow("slow.json"), client_id="me"))["prompt_id"]
        await _wait_event(ws, "execution_start", a)
        b = (await post_prompt(client, workflow("slow.json"), client_id="me"))["prompt_id"]
        assert (await client.post("/interrupt", json={"prompt_id": b})).status == 200
        assert (await client.post("/interrupt", json={"prompt_id": "unknown"})).status == 200
        queue = await (await client.get("/queue")).json()
        assert [i[1] for i in queue["queue_running"]] == [a]
        assert [i[1] for i in queue["queue_pending"]] == [b]
        await client.post("/api/interrupt", json={"prompt_id": a})
        interrupted = await _wait_event(ws, "execution_interrupted", a)
        assert set(interrupted["data"]) == {
            "prompt_id",
            "node_id",
            "node_type",
            "executed",
            "timestamp",
        }
        assert interrupted["data"]["node_id"] == "1" and interrupted["data"]["executed"] == []
        assert await _wait_event(ws, "executing", a) == {
            "type": "executing",
            "data": {"node": None, "prompt_id": a},
        }
        await _wait_event(ws, "execution_start", b)
        await client.post("/interrupt", data=b"")  # empty body: global interrupt
        await _wait_event(ws, "execution_interrupted", b)
    await emu.wait_idle(TIMEOUT)
    recorded = transcript("behaviour_interrupt.json")["history_A_status"]
    status = emu.history[a]["status"]
    assert (status["status_str"], status["completed"]) == (recorded["status_str"], False)
    assert [m[0] for m in status["messages"]] == [m[0] for m in recorded["messages"]]
    assert emu.history[a]["outputs"] == {}
    # an interrupt while idle does not hit the next prompt
    await client.post("/interrupt")
    emu.resume()
    entry = await run_prompt(client, workflow("fast.json"))
    assert entry["status"]["status_str"] == "success"


async def test_pause_blocks_before_first_node_until_resume(client: TestClient[Any, Any]) -> None:
    emu = emulator_of(client)
    emu.pause()
    answer = await post_prompt(client, workflow("fast.json"))
    with pytest.raises(asyncio.TimeoutError):
        await emu.wait_idle(0.05)
    assert emu.executed == [] and emu.queue.running is not None
    assert (await (await client.get("/_emulator/state")).json())["paused"] is True
    await client.post("/_emulator/resume")
    await emu.wait_idle(TIMEOUT)
    assert emu.executed == [answer["prompt_id"]]


async def test_crash_drops_everything_but_files(client: TestClient[Any, Any]) -> None:
    emu = emulator_of(client)
    done = await run_prompt(client, workflow("fast.json"))
    image = done["outputs"]["3"]["images"][0]
    emu.pause()
    async with client.ws_connect("/ws?clientId=victim") as ws:
        await receive_json(ws)
        running = (await post_prompt(client, workflow("slow.json"), client_id="victim"))[
            "prompt_id"
        ]
        await _wait_event(ws, "execution_start", running)
        await post_prompt(client, workflow("slow.json"))
        assert (await client.post("/_emulator/crash")).status == 200
        while True:
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR):
                break
    assert await (await client.get("/queue")).json() == {"queue_running": [], "queue_pending": []}
    assert await (await client.get("/history")).json() == {}
    assert (await client.get("/view", params=image)).status == 200
    emu.resume()
    answer = await post_prompt(client, workflow("fast.json"))
    assert answer["number"] == 0
    await emu.wait_idle(TIMEOUT)
    assert emu.history[answer["prompt_id"]]["outputs"]["3"]["images"][0]["filename"] == (
        "fast_00002_.png"
    )


async def test_faults(client: TestClient[Any, Any]) -> None:
    emu = emulator_of(client)
    await client.post("/_emulator/faults", json={"http_status": 500})
    failed = await client.get("/queue")
    assert failed.status == 500
    assert await failed.text() == "500 Internal Server Error\n\nServer got itself in trouble"
    assert (await client.get("/_emulator/state")).status == 200
    await client.post("/_emulator/faults", json={"http_status": 503})
    assert (await client.get("/api/prompt")).status == 503
    await client.post("/_emulator/faults", json={"http_status": None, "hang": True})
    hanging = asyncio.ensure_future(client.get("/prompt"))
    done, _ = await asyncio.wait({hanging}, timeout=0.05)
    assert not done
    await client.post("/_emulator/faults", json={"hang": False})
    assert (await asyncio.wait_for(hanging, TIMEOUT)).status == 200
    emu.faults.drop_connections = True
    with pytest.raises(aiohttp.ClientError):
        await client.get("/prompt")
    emu.faults.drop_connections = False
    emu.faults.http_delay = 0.01
    assert (await client.get("/prompt")).status == 200
    bad = await client.post("/_emulator/faults", json={"nope": 1})
    assert bad.status == 400
    state = await (await client.get("/_emulator/state")).json()
    assert state["faults"] == {
        "http_delay": 0.01,
        "hang": False,
        "http_status": None,
        "drop_connections": False,
    }


async def test_system_stats_and_vram(client: TestClient[Any, Any]) -> None:
    emu = emulator_of(client)
    recorded = transcript("system_stats_8188.json")["body"]
    stats = await (await client.get("/system_stats")).json()
    assert set(stats) == set(recorded) and set(stats["system"]) == set(recorded["system"])
    (device,) = stats["devices"]
    assert set(device) == set(recorded["devices"][0])
    assert device["name"] == emu.options.device_name and device["type"] == "cuda"
    assert device["vram_total"] == emu.options.vram_total
    assert device["vram_free"] == emu.options.vram_total - emu.options.vram_base_used
    await client.post("/_emulator/vram", json={"used": 20 * 1024**3})
    device = (await (await client.get("/api/system_stats")).json())["devices"][0]
    assert device["vram_free"] == emu.options.vram_total - 20 * 1024**3
    emu.set_vram_used(None)
    assert (await (await client.get("/_emulator/state")).json())["vram"]["override"] is None


async def test_catalogue_routes(client: TestClient[Any, Any]) -> None:
    features = await client.get("/features")
    assert await features.json() == transcript("features.json")["body"]
    recorded = transcript("object_info_EmptyImage.json")["body"]
    assert await (await client.get("/object_info/EmptyImage")).json() == recorded
    assert await (await client.get("/object_info/Nope")).json() == {}
    everything = await (await client.get("/api/object_info")).json()
    assert {"KSampler", "SaveImage", "LoadImage"} <= set(everything)
    ckpt = everything["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert ckpt == list(emulator_of(client).options.checkpoints)
    assert "checkpoints" in await (await client.get("/models")).json()
    models = await client.get("/models/checkpoints")
    assert await models.json() == list(emulator_of(client).options.checkpoints)
    missing = await client.get("/models/nope")
    assert missing.status == 404 and await missing.read() == b""
    assert await (await client.get("/embeddings")).json() == []
    extensions = core_extensions(web_root())  # [] without the `ui` extra
    assert await (await client.get("/extensions")).json() == extensions
    assert (await client.get("/no/such/path")).status == 404


def test_cli_options() -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    argv = "--time-scale 0.01 --vram-total 24GiB --name gpu1 --vram-base-used 512MiB"
    args = parser.parse_args(
        [*argv.split(), "--step-time", "0.1", "--checkpoints", "a.ckpt, b.ckpt"]
    )
    options = options_from_args(args)
    assert options.time_scale == 0.01 and options.vram_total == 24 * 1024**3
    assert options.vram_base_used == 512 * 1024**2
    assert options.checkpoints == ("a.ckpt", "b.ckpt") and options.name == "gpu1"
    assert options.step_time == 0.1


async def test_head_and_api_alias(client: TestClient[Any, Any]) -> None:
    assert (await client.head("/queue")).status == 200
    assert (await client.head("/api/queue")).status == 200
    assert (await client.get("/api/history")).status == 200


async def test_serve_emulator_until_cancelled() -> None:
    options = EmulatorOptions(time_scale=0.0)
    port = free_port()  # below the ports the kernel hands out by itself
    server = asyncio.ensure_future(serve_emulator(options, "127.0.0.1", port))
    url = f"http://127.0.0.1:{port}/prompt"
    async with aiohttp.ClientSession() as session:
        async with asyncio.timeout(60):  # only bounds a hang
            while True:
                assert not server.done(), server
                try:
                    async with session.get(url) as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.01)  # the server socket is not bound yet
    server.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server


async def test_state_counts_requests_by_path(client: TestClient[Any, Any]) -> None:
    """What a balancer costs a backend, as benchmarks read it: ComfyUI's
    routes by path (an /api alias counts under its own path), control
    routes aside."""
    for path in ("/queue", "/queue", "/api/queue", "/system_stats"):
        assert (await client.get(path)).status == 200
    state = await (await client.get("/_emulator/state")).json()
    assert state["requests"] == {"/queue": 2, "/api/queue": 1, "/system_stats": 1}
