"""Follow-ups reach the owner; outputs with colliding names stay apart."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image
from support import Pool, PoolFactory, colored


def inverted(color: int) -> tuple[int, int, int]:
    r, g, b = (color >> 16) & 255, (color >> 8) & 255, color & 255
    return 255 - r, 255 - g, 255 - b


async def fetch_output_pixel(pool: Pool, prompt_id: str) -> tuple[int, int, int]:
    resp = await pool.client.get(f"/history/{prompt_id}")
    entry = (await resp.json())[prompt_id]
    (image,) = entry["outputs"]["3"]["images"]
    view = await pool.client.get("/view", params=image)
    assert view.status == 200
    pixel: Any = Image.open(io.BytesIO(await view.read())).convert("RGB").getpixel((0, 0))
    return tuple(pixel)  # type: ignore[return-value]


async def test_same_output_name_on_two_backends_serves_each_its_own(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2)
    a = await pool.submit(colored(0x102030, "same"))
    b = await pool.submit(colored(0xA0B0C0, "same"))
    assert await pool.owner(a["prompt_id"]) != await pool.owner(b["prompt_id"])
    await pool.wait_idle()
    names = []
    for answer, color in ((a, 0x102030), (b, 0xA0B0C0)):
        entry = await (await pool.client.get(f"/history/{answer['prompt_id']}")).json()
        names.append(entry[answer["prompt_id"]]["outputs"]["3"]["images"][0]["filename"])
        assert await fetch_output_pixel(pool, answer["prompt_id"]) == inverted(color)
    assert names[0] == names[1] == "same_00001_.png"


async def test_many_concurrent_clients_each_get_their_own_outputs(make_pool: PoolFactory) -> None:
    pool = await make_pool(3)

    async def one_client(i: int) -> tuple[int, tuple[int, int, int]]:
        color = 0x010101 * (i + 1)
        answer = await pool.submit(colored(color, "conc"))
        return color, await wait_and_fetch(pool, answer["prompt_id"])

    results = await asyncio.gather(*(one_client(i) for i in range(30)))
    assert all(pixel == inverted(color) for color, pixel in results)
    owners = {b.backend for name in pool.emulators for b in await pool.balancer.store.pins_of(name)}
    assert owners == {"gpu0", "gpu1", "gpu2"}


async def wait_and_fetch(pool: Pool, prompt_id: str) -> tuple[int, int, int]:
    await pool.done(prompt_id)
    return await fetch_output_pixel(pool, prompt_id)


async def test_unknown_history_id_is_empty_object(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    resp = await pool.client.get("/history/not-a-known-id")
    assert resp.status == 200
    assert await resp.json() == {}


async def test_view_without_backend_prefix_is_never_guessed(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    await pool.submit(colored(1, "same"))
    await pool.wait_idle()
    resp = await pool.client.get("/view", params={"filename": "same_00001_.png", "type": "output"})
    assert resp.status == 404
    resp = await pool.client.get(
        "/view", params={"filename": "same_00001_.png", "subfolder": "@nobody"}
    )
    assert resp.status == 404


async def test_view_path_tricks_get_4xx(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    for params in (
        {"filename": "../secret.png", "subfolder": "@gpu0"},
        {"filename": "/etc/passwd", "subfolder": "@gpu0"},
        {"filename": "x.png", "subfolder": "@gpu0/../../.."},
        {"filename": "x.png", "type": "bogus"},
    ):
        resp = await pool.client.get("/view", params=params)
        assert 400 <= resp.status < 500, params


async def test_interrupt_with_prompt_id_reaches_only_its_owner(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    for emulator in pool.emulators.values():
        emulator.pause()  # each job is taken and held before its first node
    jobs = [(await pool.submit(colored(i)))["prompt_id"] for i in range(2)]
    owners = [await pool.owner(j) for j in jobs]
    assert sorted(owners) == ["gpu0", "gpu1"]
    resp = await pool.client.post("/interrupt", json={"prompt_id": jobs[0]})
    assert resp.status == 200
    for emulator in pool.emulators.values():
        emulator.resume()
    await pool.wait_idle()
    assert await status_of(pool, jobs[0]) == "error"
    assert await status_of(pool, jobs[1]) == "success"


async def test_interrupt_without_prompt_id_stops_every_backend(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    for emulator in pool.emulators.values():
        emulator.pause()
    jobs = [(await pool.submit(colored(i)))["prompt_id"] for i in range(2)]
    assert (await pool.client.post("/api/interrupt")).status == 200
    for emulator in pool.emulators.values():
        emulator.resume()
    await pool.wait_idle()
    assert [await status_of(pool, j) for j in jobs] == ["error", "error"]


async def status_of(pool: Pool, prompt_id: str) -> str:
    entry = (await (await pool.client.get(f"/history/{prompt_id}")).json())[prompt_id]
    status: str = entry["status"]["status_str"]
    return status
