"""Uploads follow the prompt to whichever backend runs it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import Pool, PoolFactory, colored
from upload_support import first_output, i2i, invert, pixel, png, upload, view

from balancer.config.routing_settings import RoutingSettings
from balancer.files import transfer
from balancer.files.paths import FileKey


def count_pushes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, FileKey]]:
    pushes: list[tuple[str, FileKey]] = []
    real = transfer.push

    async def counting(session: Any, url: str, key: FileKey, blob: Path) -> FileKey:
        pushes.append((url, key))
        return await real(session, url, key, blob)

    monkeypatch.setattr(transfer, "push", counting)
    return pushes


SEND_AT_ONCE = RoutingSettings(max_pending_per_backend=None)


async def pool_of(
    make_pool: PoolFactory, count: int, routing: RoutingSettings = SEND_AT_ONCE
) -> Pool:
    """By default every prompt goes to a backend at once (no waiting in the
    balancer's queue), so a test sees placement in the POST itself."""
    return await make_pool(count, settings_overrides={"routing": routing})


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for the channel's reconnect (its backoff runs on real time)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def run(pool: Pool, prompt: dict[str, Any]) -> tuple[str, bytes]:
    """Submit, wait, and return (owner, the first output's bytes via /view)."""
    answer = await pool.submit(prompt)
    await pool.wait_idle()
    prompt_id = answer["prompt_id"]
    return await pool.owner(prompt_id), await view(pool, await first_output(pool, prompt_id))


async def test_prompt_runs_on_a_backend_that_never_saw_the_upload(make_pool: PoolFactory) -> None:
    pool = await pool_of(make_pool, 3)
    color = (10, 200, 30)
    status, body = await upload(pool.client, png(color), "lb_input.png")
    assert status == 200 and body["name"] == "lb_input.png"
    assert not any(
        (e.dirs.folder("input") / "lb_input.png").exists() for e in pool.emulators.values()
    )
    owner, result = await run(pool, i2i(body["name"]))
    assert pixel(result)[:3] == invert(color)
    assert (pool.emulators[owner].dirs.folder("input") / "lb_input.png").is_file()


async def test_same_name_different_bytes_each_prompt_gets_its_own_image(
    make_pool: PoolFactory,
) -> None:
    pool = await pool_of(make_pool, 3)
    colors = [(255, 0, 0), (0, 0, 255)]
    names = [(await upload(pool.client, png(c), "same.png"))[1]["name"] for c in colors]
    assert names == ["same.png", "same (1).png"]
    answers = [await pool.submit(i2i(name, f"p{i}")) for i, name in enumerate(names)]
    await pool.wait_idle()
    for answer, color in zip(answers, colors, strict=True):
        item = await first_output(pool, answer["prompt_id"])
        assert pixel(await view(pool, item))[:3] == invert(color)


async def test_a_backend_that_has_the_bytes_gets_no_second_copy(
    make_pool: PoolFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushes = count_pushes(monkeypatch)
    pool = await pool_of(make_pool, 1)
    await upload(pool.client, png((1, 2, 3)), "x.png")
    for i in range(3):
        await run(pool, i2i("x.png", f"n{i}"))
    assert len(pushes) == 1
    # Overwritten with new bytes: sent again, and the prompt sees the new image.
    await upload(pool.client, png((50, 60, 70)), "x.png", overwrite="true")
    _, result = await run(pool, i2i("x.png", "after"))
    assert len(pushes) == 2 and pixel(result)[:3] == invert((50, 60, 70))


async def test_files_are_sent_again_after_a_backend_restart(
    make_pool: PoolFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushes = count_pushes(monkeypatch)
    pool = await pool_of(make_pool, 1)
    await upload(pool.client, png((9, 9, 9)), "r.png")
    await run(pool, i2i("r.png", "before"))
    emulator = pool.emulators["gpu0"]
    (emulator.dirs.folder("input") / "r.png").unlink()  # a fresh machine, say
    channel = pool.balancer.channels.channels["gpu0"]
    generation = channel.generation
    await emulator.crash()
    await until(lambda: channel.generation > generation and channel.connected.is_set())
    await pool.probe()
    _, result = await run(pool, i2i("r.png", "after"))
    assert len(pushes) == 2 and pixel(result)[:3] == invert((9, 9, 9))


async def test_a_prompt_naming_a_file_nobody_has_gets_comfyuis_400(
    make_pool: PoolFactory,
) -> None:
    pool = await pool_of(make_pool, 2)
    resp = await pool.client.post("/prompt", json={"prompt": i2i("ghost.png")})
    assert resp.status == 400
    body = await resp.json()
    assert "Invalid image file" in str(body["node_errors"])


async def test_an_output_of_another_backend_follows_the_prompt(make_pool: PoolFactory) -> None:
    pool = await pool_of(make_pool, 2)
    answer = await pool.submit(colored(0x336699))
    await pool.wait_idle()
    first = await pool.owner(answer["prompt_id"])
    item = await first_output(pool, answer["prompt_id"])
    assert item["subfolder"] == f"@{first}"
    source = pixel(await view(pool, item))[:3]
    other = next(n for n in pool.emulators if n != first)
    pool.balancer.registry.get(first).mark_down("test: force the other backend")  # type: ignore[union-attr]
    value = f"{item['subfolder']}/{item['filename']} [output]"
    owner, result = await run(pool, i2i(value, "second"))
    assert owner == other and pixel(result)[:3] == invert(source)
    placed = pool.emulators[other].dirs.folder("input") / f"@{first}" / "output"
    assert (placed / item["filename"]).is_file()


async def test_an_output_on_the_same_backend_is_used_in_place(make_pool: PoolFactory) -> None:
    pool = await pool_of(make_pool, 1)
    answer = await pool.submit(colored(0x102030))
    await pool.wait_idle()
    item = await first_output(pool, answer["prompt_id"])
    source = pixel(await view(pool, item))[:3]
    _, result = await run(pool, i2i(f"{item['subfolder']}/{item['filename']} [output]", "b"))
    assert pixel(result)[:3] == invert(source)


async def test_mask_over_a_previous_output(make_pool: PoolFactory) -> None:
    pool = await pool_of(make_pool, 2)
    answer = await pool.submit(colored(0xC08040))
    await pool.wait_idle()
    item = await first_output(pool, answer["prompt_id"])
    ref = {"filename": item["filename"], "subfolder": item["subfolder"], "type": "output"}
    source = pixel(await view(pool, item))[:3]
    mask = png((0, 0, 0), (64, 64), alpha=77)

    status, body = await upload(
        pool.client,
        mask,
        "mask.png",
        "/upload/mask",
        original_ref=json.dumps(ref),
        subfolder="clipspace",
    )
    assert status == 200 and body == {"name": "mask.png", "subfolder": "clipspace", "type": "input"}
    resp = await pool.client.get(
        "/view", params={"filename": "mask.png", "subfolder": "clipspace", "type": "input"}
    )
    assert pixel(await resp.read()) == (*source, 77)
    _, result = await run(pool, i2i("clipspace/mask.png", "masked"))
    assert pixel(result)[:3] == invert(source)


async def test_mask_with_a_missing_or_bad_original_is_400(make_pool: PoolFactory) -> None:
    pool = await pool_of(make_pool, 2)
    mask = png((0, 0, 0), alpha=1)
    for raw in ['{"filename": "nope.png", "subfolder": "@gpu0"}', "{bad", '{"filename": "../x"}']:
        status, body = await upload(pool.client, mask, "m.png", "/upload/mask", original_ref=raw)
        assert status == 400 and body["error"]["type"] == "invalid_upload", raw
    status, _ = await upload(pool.client, mask, "m.png", "/upload/mask")
    assert status == 400


@pytest.mark.parametrize("routing", [SEND_AT_ONCE, RoutingSettings()], ids=["at-once", "late"])
async def test_thirty_concurrent_image_to_image_clients(
    make_pool: PoolFactory, routing: RoutingSettings
) -> None:
    """The standard client flow, 30 at once over 3 backends, 30 different
    images; with late binding most prompts wait and are placed when bound."""
    pool = await pool_of(make_pool, 3, routing)

    async def client(i: int) -> tuple[tuple[int, int, int], Any]:
        color = (i * 8, 255 - i * 8, (i * 37) % 256)
        status, body = await upload(pool.client, png(color), "input.png")
        assert status == 200
        answer = await pool.submit(i2i(body["name"], f"c{i}"))
        return color, answer["prompt_id"]

    started = await asyncio.gather(*(client(i) for i in range(30)))
    await pool.settle([prompt_id for _, prompt_id in started])
    owners = set()
    for color, prompt_id in started:
        owners.add(await pool.owner(prompt_id))
        result = await view(pool, await first_output(pool, prompt_id))
        assert pixel(result)[:3] == invert(color)
    assert len(owners) == 3
