"""A backend that sends malformed text frames (some naming a running job,
some cut short or overlong versions of the frames the channel relays) does
not break its channel: none reaches a client, and the job's own frames
follow as they would without them."""

from __future__ import annotations

import json

from proxy.test_ws import Message, connect
from recorded import live_frame, token
from support import PoolFactory, colored


def malformed(prompt_id: str) -> list[str]:
    """Frames a client must not get, most naming the running job."""
    data = {"value": 1, "max": 2, "prompt_id": prompt_id, "node": "3"}
    progress = json.dumps({"type": "progress", "data": data})
    data = {"node": "3", "display_node": "3", "prompt_id": prompt_id}
    executing = json.dumps({"type": "executing", "data": data})
    state = json.dumps({"type": "progress_state", "data": {"prompt_id": prompt_id, "nodes": {}}})
    return [
        "not json",
        "[1, 2]",
        '{"type": 7}',
        '{"type": "progress", "data": 3}',
        '{"type": "status", "data": {"status": null}}',
        progress[:-1],  # one brace short
        progress + "}",  # one too many
        state[:-3] + '{"3": {"value": 1',  # cut off
        executing[:-1],
        executing + "x",
    ]


def tokens(frames: list[Message]) -> list[str]:
    """The job's frames, one word each (not the balancer's own `status`)."""
    return [token(f) for f in map(live_frame, frames) if f[0] != "status"]


async def test_malformed_frames_from_a_backend_reach_no_client_and_the_channel_goes_on(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1)
    sock = await connect(pool, "me")
    emulator, gpu0 = pool.emulators["gpu0"], pool.balancer.registry.get("gpu0")
    assert gpu0 is not None and gpu0.channel_id is not None
    clean = (await pool.submit(colored(1), client_id="me"))["prompt_id"]
    expected = tokens(await sock.until_done(clean))

    emulator.pause()
    prompt_id = (await pool.submit(colored(2), client_id="me"))["prompt_id"]
    channel = emulator.hub.clients[gpu0.channel_id]
    for raw in malformed(prompt_id):
        channel.outbox.put_nowait(raw)
    emulator.resume()
    frames = await sock.until_done(prompt_id)  # every text frame it reads is parsed
    assert tokens(frames) == expected
    assert pool.balancer.channels.channels["gpu0"].connected.is_set()
