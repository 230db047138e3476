"""POST /prompt against the recorded 0.3.64 answers: errors, numbering, prompt ids."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .emu_helpers import emulator_of, post_prompt, receive_json, transcript, workflow

INVALID_CASES = {case["case"]: case for case in transcript("post_prompt_invalid.json")}


def _strip_tracebacks(body: Any) -> Any:
    """Tracebacks name the server's own files and lines (/opt/ComfyUI/execution.py:808 there,
    the emulator's modules here), so they are machine-specific: compare everything else."""
    if isinstance(body, dict):
        return {k: _strip_tracebacks(v) for k, v in body.items() if k != "traceback"}
    if isinstance(body, list):
        return [_strip_tracebacks(v) for v in body]
    return body


@pytest.mark.parametrize(
    "name", [name for name in INVALID_CASES if name not in ("malformed_json_body", "no_prompt_key")]
)
async def test_invalid_prompt_matches_recording(client: TestClient[Any, Any], name: str) -> None:
    case = INVALID_CASES[name]
    resp = await client.post("/prompt", json={"prompt": case.get("prompt", {})})
    assert resp.status == case["status"]
    assert resp.content_type == "application/json"
    assert _strip_tracebacks(await resp.json()) == _strip_tracebacks(case["body"])


async def test_exception_traceback_is_a_list_of_strings(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/prompt", json={"prompt": INVALID_CASES["link_to_missing_node"]["prompt"]}
    )
    extra = (await resp.json())["node_errors"]["2"]["errors"][0]["extra_info"]
    assert extra["traceback"] and all(isinstance(line, str) for line in extra["traceback"])


async def test_no_prompt_key(client: TestClient[Any, Any]) -> None:
    case = INVALID_CASES["no_prompt_key"]
    resp = await client.post("/api/prompt", json={"client_id": "x"})
    assert resp.status == 400
    assert await resp.json() == case["body"]


async def test_malformed_json_is_recorded_500(client: TestClient[Any, Any]) -> None:
    case = INVALID_CASES["malformed_json_body"]
    resp = await client.post("/prompt", data=b"{not json")
    assert resp.status == 500
    assert resp.headers["Content-Type"] == case["content_type"]
    assert await resp.text() == case["body"]


async def test_missing_class_type(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/prompt", json={"prompt": {"7": {"inputs": {}}}})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_prompt"
    assert error["message"] == "Cannot execute because a node is missing the class_type property."
    assert error["details"] == "Node ID '#7'"


async def test_success_shape_and_counter(client: TestClient[Any, Any]) -> None:
    recorded = transcript("post_prompt_success.json")
    emulator_of(client).pause()
    first = await post_prompt(client, recorded["request"]["prompt"], client_id="c1")
    assert set(first) == set(recorded["response"]) and first["node_errors"] == {}
    assert first["number"] == 0
    # validation failures still consume a number
    bad = await client.post("/prompt", json={"prompt": {}})
    assert bad.status == 400
    second = await post_prompt(client, workflow("fast.json"))
    assert second["number"] == 2


async def test_number_and_front_ordering(client: TestClient[Any, Any]) -> None:
    emu = emulator_of(client)
    emu.pause()
    async with client.ws_connect("/ws?clientId=watch") as ws:
        await post_prompt(client, workflow("fast.json"), prompt_id="blocker", client_id="watch")
        while (await receive_json(ws))["type"] != "execution_start":
            pass  # the blocker now runs (held before its first node by pause)
    normal = await post_prompt(client, workflow("fast.json"), prompt_id="normal-1")
    front = await post_prompt(client, workflow("fast.json"), prompt_id="front-1", front=True)
    explicit = await post_prompt(
        client, workflow("fast.json"), prompt_id="number-minus-1e9", number=-1e9
    )
    assert (normal["number"], front["number"], explicit["number"]) == (1, -2, -1000000000.0)
    assert isinstance(explicit["number"], float)
    queue = await (await client.get("/queue")).json()
    recorded = transcript("behaviour_prompt_id.json")["number_and_front"]
    assert [item[1] for item in queue["queue_pending"]] == recorded["queue_pending_order"]
    emu.resume()
    await emu.wait_idle(10)
    assert emu.executed == recorded["history_last4_order"]


async def test_client_prompt_id_verbatim_and_duplicates(client: TestClient[Any, Any]) -> None:
    emu = emulator_of(client)
    first = await post_prompt(client, workflow("fast.json"), prompt_id="lb-1")
    await emu.wait_idle(10)
    prompt = workflow("fast.json")
    prompt["1"]["inputs"]["color"] = 12776223
    again = await post_prompt(client, prompt, prompt_id="lb-1")
    assert first["prompt_id"] == again["prompt_id"] == "lb-1"
    await emu.wait_idle(10)
    history = await (await client.get("/history")).json()
    assert list(history) == ["lb-1"]
    assert history["lb-1"]["prompt"][2]["1"]["inputs"]["color"] == 12776223
    numeric = await post_prompt(client, workflow("fast.json"), prompt_id=12345)
    assert numeric["prompt_id"] == "12345"
    slash = await post_prompt(client, workflow("fast.json"), prompt_id="a/b")
    await emu.wait_idle(10)
    assert (await client.get("/history/a/b")).status == 404
    assert "a/b" in await (await client.get("/history/a%2Fb")).json()
    assert slash["prompt_id"] == "a/b"


async def test_partial_validity_queues_valid_outputs(client: TestClient[Any, Any]) -> None:
    prompt = workflow("fast.json")
    prompt["4"] = {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}
    answer = await post_prompt(client, prompt)
    assert answer["node_errors"]["4"]["errors"][0]["type"] == "required_input_missing"
    assert answer["node_errors"]["4"]["dependent_outputs"] == ["4"]
    await emulator_of(client).wait_idle(10)
    entry = (await (await client.get(f"/history/{answer['prompt_id']}")).json())[
        answer["prompt_id"]
    ]
    assert entry["prompt"][4] == ["3"]


async def test_more_rejections(client: TestClient[Any, Any]) -> None:
    def with_input(node: str, name: str, value: Any) -> dict[str, Any]:
        prompt = workflow("fast.json")
        prompt[node]["inputs"][name] = value
        return prompt

    cases = {
        "value_bigger_than_max": with_input("1", "width", 99999),
        "bad_linked_input": with_input("2", "image", ["1", 0, 0]),
        "return_type_mismatch": with_input("3", "images", ["9", 0])
        | {"9": {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}}},
    }
    for kind, prompt in cases.items():
        resp = await client.post("/prompt", json={"prompt": prompt})
        assert resp.status == 400, kind
        errors = [e for node in (await resp.json())["node_errors"].values() for e in node["errors"]]
        assert errors[0]["type"] == kind
    unknown_ckpt = workflow("txt2img.json")
    unknown_ckpt["4"]["inputs"]["ckpt_name"] = "nope.safetensors"
    resp = await client.post("/prompt", json={"prompt": unknown_ckpt})
    errors = (await resp.json())["node_errors"]
    assert list(errors) == ["4"]
    error = errors["4"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == (
        "ckpt_name: 'nope.safetensors' not in ['sd_xl_base_1.0.safetensors', "
        "'v1-5-pruned-emaonly.safetensors', 'v1-5-pruned-emaonly-fp16.safetensors']"
    )


async def test_unknown_extra_inputs_pass(client: TestClient[Any, Any]) -> None:
    prompt = workflow("fast.json")
    prompt["2"]["inputs"]["_nonce"] = 123
    answer = await post_prompt(client, prompt)
    assert answer["node_errors"] == {}
