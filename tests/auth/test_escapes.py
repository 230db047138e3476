"""Regression tests for tenant escapes: every path is resolved first and the
ownership check reads the same location the store or backend is then asked
for (issue 12, defects 1 and 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import Pool, PoolFactory, colored
from upload_support import form, i2i, png

from .auth_helpers import as_, keyed_pool, submit_as

SECRET = png((201, 13, 77))
ESCAPES = [
    "_t_bob/../_t_alice",
    "_t_bob/./../_t_alice",
    "_t_bob//..//_t_alice",
    "_t_bob\\..\\_t_alice",
    "_t_bob/x/../../_t_alice",
]


async def alice_secret(pool: Pool) -> dict[str, str]:
    resp = await pool.client.post(
        "/upload/image", data=form(SECRET, "secret.png"), headers=as_("alice")
    )
    answer: dict[str, str] = await resp.json()
    assert answer == {"name": "secret.png", "subfolder": "_t_alice", "type": "input"}
    return answer


async def alice_bytes(pool: Pool) -> bytes:
    params = {"filename": "secret.png", "subfolder": "_t_alice", "type": "input"}
    resp = await pool.client.get("/view", params=params, headers=as_("alice"))
    assert resp.status == 200
    return await resp.read()


@pytest.mark.parametrize("subfolder", ESCAPES)
async def test_view_with_dot_segments_never_reaches_another_tenants_upload(
    make_pool: PoolFactory, subfolder: str
) -> None:
    pool = await keyed_pool(make_pool, 2)
    await alice_secret(pool)
    params = {"filename": "secret.png", "subfolder": subfolder, "type": "input"}
    resp = await pool.client.get("/view", params=params, headers=as_("bob"))
    assert resp.status == 404
    assert SECRET not in await resp.read()
    assert await alice_bytes(pool) == SECRET


@pytest.mark.parametrize("subfolder", ["../_t_alice", *ESCAPES, "/_t_alice", "_t_alice"])
async def test_an_upload_never_replaces_another_tenants_file(
    make_pool: PoolFactory, subfolder: str
) -> None:
    pool = await keyed_pool(make_pool, 2)
    await alice_secret(pool)
    fields = {"subfolder": subfolder, "overwrite": "true"}
    data = form(png((1, 2, 3)), "secret.png", **fields)
    resp = await pool.client.post("/upload/image", data=data, headers=as_("bob"))
    assert resp.status in (200, 400)
    if resp.status == 200:
        assert (await resp.json())["subfolder"].startswith("_t_bob/")
    assert await alice_bytes(pool) == SECRET


@pytest.mark.parametrize(
    "value",
    [
        "_t_bob/../_t_alice/secret.png",
        "_t_bob\\..\\_t_alice\\secret.png",
        "_t_bob/../_t_alice/secret.png [input]",
        "../input/_t_alice/secret.png",
        "_t_alice/secret.png",
        "/_t_alice/secret.png",
    ],
)
async def test_a_prompt_cannot_load_another_tenants_upload(
    make_pool: PoolFactory, value: str
) -> None:
    pool = await keyed_pool(make_pool, 2)
    await alice_secret(pool)
    resp = await pool.client.post("/prompt", json={"prompt": i2i(value)}, headers=as_("bob"))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    (error,) = body["node_errors"]["1"]["errors"]
    assert error["details"] == f"image - Invalid image file: {value}"
    assert all(not e.history for e in pool.emulators.values())


@pytest.mark.parametrize("subfolder", ESCAPES)
async def test_a_mask_original_ref_cannot_name_another_tenants_upload(
    make_pool: PoolFactory, subfolder: str
) -> None:
    pool = await keyed_pool(make_pool, 2)
    await alice_secret(pool)
    ref = json.dumps({"filename": "secret.png", "subfolder": subfolder, "type": "input"})
    data = form(png((0, 0, 0), alpha=0), "mask.png", original_ref=ref)
    resp = await pool.client.post("/upload/mask", data=data, headers=as_("bob"))
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == "Invalid original_ref"


async def alice_output(pool: Pool) -> dict[str, Any]:
    prompt_id = await submit_as(pool, "alice", colored(7, "alice_out"))
    await pool.settle([prompt_id])
    entry = await (await pool.client.get(f"/history/{prompt_id}", headers=as_("alice"))).json()
    (image,) = entry[prompt_id]["outputs"]["3"]["images"]
    return dict(image)


@pytest.mark.parametrize("count", [1, 2])
async def test_a_prompt_cannot_copy_another_tenants_output(
    make_pool: PoolFactory, count: int
) -> None:
    pool = await keyed_pool(make_pool, count)
    image = await alice_output(pool)
    plain = f"{image['filename']} [output]"
    prefixed = f"{image['subfolder']}/{image['filename']} [output]"
    for value in (plain, prefixed, f"../output/{image['filename']}"):
        resp = await pool.client.post("/prompt", json={"prompt": i2i(value)}, headers=as_("bob"))
        assert resp.status == 400, value
        assert (await resp.json())["node_errors"]["1"]["class_type"] == "LoadImage"
    # her own output, named as her history names it, still works
    mine = await submit_as(pool, "alice", i2i(prefixed))
    await pool.settle([mine])
