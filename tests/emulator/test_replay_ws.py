"""Every recorded WebSocket session replayed against the emulator, frame by
frame: the same frames in the same order with the same data, once prompt_id,
sid, timestamps and output names are normalised (and, for a runtime error,
the Python traceback, which names the emulator's files, not ComfyUI's)."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image
from recorded import live_frame, order_token, recorded_session, transcript

from .emu_helpers import collect_until_done, post_prompt, receive_json, run_prompt, workflow

Setup = Callable[[TestClient[Any, Any]], Awaitable[None]]
FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}


async def nothing(client: TestClient[Any, Any]) -> None:
    return None


async def fast_once(client: TestClient[Any, Any]) -> None:
    await run_prompt(client, workflow("fast.json"))


async def upload_input(client: TestClient[Any, Any]) -> None:
    form = FormData()
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(out, format="PNG")
    form.add_field("image", out.getvalue(), filename="lb_input.png")
    assert (await client.post("/upload/image", data=form)).status == 200


# recording -> (workflow, what runs before the socket opens)
SESSIONS: dict[str, tuple[str, Setup]] = {
    "ws_fast.jsonl": ("fast.json", nothing),
    "ws_fast_cached_resubmit.jsonl": ("fast.json", fast_once),
    "ws_progress_ws.jsonl": ("progress_ws.json", nothing),
    "ws_progress_ws_with_feature_flags.jsonl": ("progress_ws.json", nothing),
    "ws_runtime_error.jsonl": ("runtime_error.json", nothing),
    "ws_slow.jsonl": ("slow.json", nothing),
    "ws_upload_loadimage.jsonl": ("upload_loadimage.json", upload_input),
    "ws_savews_batch2.jsonl": ("savews_batch2.json", nothing),
    "ws_savews_batch2_with_feature_flags.jsonl": ("savews_batch2.json", nothing),
    "ws_blur_save.jsonl": ("blur_save.json", nothing),
    "ws_blur_save_with_feature_flags.jsonl": ("blur_save.json", nothing),
    "ws_blur_savews.jsonl": ("blur_savews.json", nothing),
    "ws_blur_savews_with_feature_flags.jsonl": ("blur_savews.json", nothing),
}
PYTHON_DETAILS = ("traceback", "exception_message", "current_inputs", "current_outputs")


def comparable(frame: Any) -> Any:
    if frame[0] == "execution_error":
        return (frame[0], {k: v for k, v in frame[1].items() if k not in PYTHON_DETAILS})
    return frame


async def replay(client: TestClient[Any, Any], recording: str) -> list[Any]:
    name, setup = SESSIONS[recording]
    await setup(client)
    async with client.ws_connect("/ws?clientId=replay") as ws:
        frames: list[Any] = [await receive_json(ws)]
        if "feature_flags" in recording:
            await ws.send_str(json.dumps(FLAGS))
            frames.append(await receive_json(ws))
        answer = await post_prompt(client, workflow(name), client_id="replay")
        frames += await collect_until_done(ws, answer["prompt_id"])
    return [comparable(live_frame(f if "binary" not in f else f["data"])) for f in frames]


@pytest.mark.parametrize("recording", sorted(SESSIONS))
async def test_session_replays_frame_by_frame(client: TestClient[Any, Any], recording: str) -> None:
    recorded = [comparable(f) for f in recorded_session(recording)]
    live = await replay(client, recording)
    assert [order_token(f) for f in live] == [order_token(f) for f in recorded]
    assert live == recorded


@pytest.mark.parametrize(
    "recording", sorted(transcript("behaviour_ws_frame_order.json")["sequences"])
)
async def test_frame_order_summary_matches_the_emulator(
    client: TestClient[Any, Any], recording: str
) -> None:
    """behaviour_ws_frame_order.json: the same six sessions, one token a frame."""
    expected = transcript("behaviour_ws_frame_order.json")["sequences"][recording]
    assert [order_token(f) for f in recorded_session(recording)] == expected
    assert [order_token(f) for f in await replay(client, recording)] == expected
