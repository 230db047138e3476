"""Frame order as ComfyUI sends it to each kind of socket, replayed from the
recordings of a real ComfyUI 0.3.64 through the balancer, frame by frame.

The balancer's channel asks for metadata previews, so it receives the
feature_flags order (progress_state, type 4, progress); a plain socket must
still get ComfyUI's plain order (progress_state, progress, type 1). `status`
messages are the balancer's own pool-wide count (README, "WebSocket events"),
so only the first one, which carries the sid, is compared."""

from __future__ import annotations

from typing import Any

import pytest
from proxy.test_ws import Message, Socket, connect
from recorded import live_frame, recorded_session, token
from support import Pool, PoolFactory, workflow

FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
RECORDINGS = [
    ("savews_batch2", "ws_savews_batch2.jsonl"),
    ("savews_batch2", "ws_savews_batch2_with_feature_flags.jsonl"),
    ("blur_savews", "ws_blur_savews.jsonl"),
    ("blur_savews", "ws_blur_savews_with_feature_flags.jsonl"),
    ("blur_save", "ws_blur_save.jsonl"),
    ("blur_save", "ws_blur_save_with_feature_flags.jsonl"),
]


def comparable(frames: list[Any]) -> list[Any]:
    """The first frame (status with the sid), then everything but `status`."""
    return frames[:1] + [f for f in frames[1:] if f[0] != "status"]


async def session(pool: Pool, client_id: str, flags: bool) -> Socket:
    sock = await connect(pool, client_id)
    if flags:
        await sock.ws.send_json(FLAGS)
        await sock.next()  # the feature_flags reply
    return sock


def replayed(sock: Socket, frames: list[Message] | None = None) -> list[Any]:
    """The socket's frames from its opening, or `frames` from later on (no
    opening: every `status` left out)."""
    if frames is None:
        return comparable([live_frame(f) for f in sock.frames])
    return [f for f in map(live_frame, frames) if f[0] != "status"]


@pytest.mark.parametrize(("name", "recording"), RECORDINGS)
async def test_each_recorded_session_replays_frame_by_frame(
    make_pool: PoolFactory, name: str, recording: str
) -> None:
    pool = await make_pool(1)
    sock = await session(pool, "me", "feature_flags" in recording)
    prompt_id = (await pool.submit(workflow(name), client_id="me"))["prompt_id"]
    await sock.until_done(prompt_id)
    live, recorded = replayed(sock), comparable(recorded_session(recording))
    assert [token(f) for f in live] == [token(f) for f in recorded]
    assert live == recorded


async def test_a_plain_and_a_feature_flags_socket_of_one_client_each_get_their_order(
    make_pool: PoolFactory,
) -> None:
    """One channel stream, two socket kinds under one sid: the type 1 frame is
    held for the plain socket only; the other gets type 4 at once."""
    pool = await make_pool(1)
    plain = await session(pool, "both", False)
    modern = await session(pool, "both", True)
    prompt_id = (await pool.submit(workflow("savews_batch2"), client_id="both"))["prompt_id"]
    plain_frames = await plain.until_done(prompt_id)
    modern_frames = await modern.until_done(prompt_id)
    expected = {
        "ws_savews_batch2.jsonl": replayed(plain, plain_frames),
        "ws_savews_batch2_with_feature_flags.jsonl": replayed(modern, modern_frames),
    }
    for recording, live in expected.items():
        recorded = comparable(recorded_session(recording))[1:]  # from after the opening
        recorded = [f for f in recorded if f[0] != "feature_flags"]
        assert [token(f) for f in live] == [token(f) for f in recorded], recording


async def test_a_prompt_without_client_id_broadcasts_progress_then_type_1(
    make_pool: PoolFactory,
) -> None:
    """ComfyUI broadcasts progress and previews of a prompt without client_id
    to every socket as type 1; the plain order holds there too."""
    pool = await make_pool(1)
    watcher = await session(pool, "watcher", False)
    await pool.submit(workflow("savews_batch2"))
    await pool.wait_idle()
    marker = (await pool.submit(workflow("fast"), client_id="watcher"))["prompt_id"]
    frames = await watcher.until_done(marker)
    steps = [token(live_frame(f)) for f in frames]
    assert [t for t in steps if t in ("progress", "BIN1")] == ["progress", "BIN1"] * 2
