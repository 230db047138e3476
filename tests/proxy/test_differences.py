"""The README's table of deliberate differences from ComfyUI, checked row by
row against the balancer: each row's request is sent through it and must get
the status and error type of the table's balancer column."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, FormData
from PIL import Image
from support import Pool, PoolFactory, colored

README = Path(__file__).parents[2] / "README.md"
SECTION = "## Where the balancer answers differently from ComfyUI"
Check = Callable[[Pool], Awaitable[ClientResponse]]


def table() -> dict[str, str]:
    """request -> balancer column, from the README section's table."""
    text = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| `")]
    return {cells[0].strip(): cells[2].strip() for cells in rows}


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (10, 20, 30, 128)).save(out, format="PNG")
    return out.getvalue()


async def mask(pool: Pool, original_ref: str | None, size: tuple[int, int] = (8, 8)) -> Any:
    form = FormData()
    form.add_field("image", png(size), filename="clipspace-mask.png")
    if original_ref is not None:
        form.add_field("original_ref", original_ref)
    return await pool.client.post("/upload/mask", data=form)


def ref(filename: str, kind: str = "input") -> str:
    return json.dumps({"filename": filename, "subfolder": "", "type": kind})


async def not_json_prompt(pool: Pool) -> ClientResponse:
    headers = {"Content-Type": "application/json"}
    return await pool.client.post("/prompt", data=b"{not json", headers=headers)


async def reused_prompt_id(pool: Pool) -> ClientResponse:
    await pool.submit(colored(1), prompt_id="reused-1")
    return await pool.client.post("/prompt", json={"prompt": colored(2), "prompt_id": "reused-1"})


async def empty_queue_body(pool: Pool) -> ClientResponse:
    return await pool.client.post("/queue", data=b"")


async def mask_of_another_size(pool: Pool) -> ClientResponse:
    form = FormData()
    form.add_field("image", png((16, 16)), filename="original.png")
    assert (await pool.client.post("/upload/image", data=form)).status == 200
    return await mask(pool, ref("original.png"), size=(8, 8))


CHECKS: dict[str, Check] = {
    "`POST /prompt` with a body that is not JSON": not_json_prompt,
    "`POST /prompt` reusing a `prompt_id` with another workflow": reused_prompt_id,
    "`POST /queue` with an empty body": empty_queue_body,
    "`POST /upload/mask` with an `original_ref` that is not JSON": lambda p: mask(p, "{not json"),
    "`POST /upload/mask` without `original_ref`": lambda p: mask(p, None),
    "`POST /upload/mask` naming an original that does not exist": lambda p: mask(
        p, ref("does_not_exist.png")
    ),
    "`POST /upload/mask` with `..` in the original's name": lambda p: mask(
        p, ref("../in/mask_orig.png", "output")
    ),
    "`POST /upload/mask` with a mask of another size than the original": mask_of_another_size,
}


def test_every_row_of_the_table_has_a_check() -> None:
    assert sorted(table()) == sorted(CHECKS)


@pytest.mark.parametrize("request_", sorted(CHECKS))
async def test_the_balancer_answers_as_the_table_says(
    make_pool: PoolFactory, request_: str
) -> None:
    expected = re.fullmatch(r"(\d{3}) `(\w+)`", table()[request_])
    assert expected is not None, table()[request_]
    pool = await make_pool(2)
    resp = await CHECKS[request_](pool)
    body = await resp.json()
    assert (resp.status, body["error"]["type"]) == (int(expected[1]), expected[2])
    assert set(body) == {"error", "node_errors"}
    assert set(body["error"]) == {"type", "message", "details", "extra_info"}
