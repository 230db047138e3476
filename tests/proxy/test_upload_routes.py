"""POST /upload/image answered from the balancer's store, with ComfyUI's naming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support import FIXTURES, Pool, PoolFactory
from upload_support import form, png, upload

from balancer.config.server_settings import LimitSettings
from balancer.files.uploads import uploads_dir

RED, BLUE = png((255, 0, 0)), png((0, 0, 255))


def store_root(pool: Pool) -> Path:
    return uploads_dir(pool.balancer.settings)


def recorded() -> list[dict[str, Any]]:
    path = FIXTURES / "transcripts" / "upload_image.json"
    cases: list[dict[str, Any]] = json.loads(path.read_text())
    return cases


async def test_recorded_naming_cases(make_pool: PoolFactory) -> None:
    """The recorded sequence: 225-byte and 157-byte images under one name."""
    pool = await make_pool(2)
    images = {225: RED, 157: BLUE}
    for case in recorded():
        fields = dict(case["form_fields"])
        size = int(fields.pop("image").split()[0].lstrip("<"))
        filename = _recorded_filename(case)
        status, body = await upload(pool.client, images[size], filename, **fields)
        assert (status, body) == (case["status"], case["body"]), case
    for emulator in pool.emulators.values():  # nothing reached a backend
        assert not list(emulator.dirs.folder("input").iterdir())


def _recorded_filename(case: dict[str, Any]) -> str:
    return str(case["form_fields"]["image"].split("filename=")[1].rstrip(">"))


async def test_same_name_different_bytes_numbers_on(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    names = []
    for color in [(1, 2, 3), (4, 5, 6), (7, 8, 9), (4, 5, 6)]:
        _, body = await upload(pool.client, png(color), "a.png")
        names.append(body["name"])
    assert names == ["a.png", "a (1).png", "a (2).png", "a (1).png"]
    _, body = await upload(pool.client, RED, "a.png", overwrite="1")
    assert body == {"name": "a.png", "subfolder": "", "type": "input"}


async def test_subfolders_and_types_are_separate_namespaces(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    assert (await upload(pool.client, RED, "x.png"))[1]["name"] == "x.png"
    for kind in ("temp", "output"):
        status, body = await upload(pool.client, BLUE, "x.png", type=kind)
        assert (status, body) == (200, {"name": "x.png", "subfolder": "", "type": kind})
    _, body = await upload(pool.client, BLUE, "x.png", subfolder="lb/")
    assert body == {"name": "x.png", "subfolder": "lb/", "type": "input"}
    _, body = await upload(pool.client, RED, "x.png", subfolder="lb")
    assert body["name"] == "x (1).png", "lb/ and lb are one folder"
    status, body = await upload(pool.client, RED, "x.png", "/api/upload/image")
    assert (status, body["name"]) == (200, "x.png")


@pytest.mark.parametrize(
    ("filename", "fields"),
    [
        ("../evil2.png", {}),
        ("x/../../evil3.png", {}),
        ("/etc/evil.png", {}),
        ("..", {}),
        ("sub/x.png", {}),
        ("ok.png", {"subfolder": "../up"}),
        ("ok.png", {"subfolder": "a/../../up"}),
        ("ok.png", {"subfolder": "/etc"}),
        ("ok.png", {"subfolder": "@gpu0"}),
        ("ok.png", {"type": "models"}),
    ],
)
async def test_bad_names_are_400_in_comfy_error_shape(
    make_pool: PoolFactory, filename: str, fields: dict[str, str]
) -> None:
    pool = await make_pool(1)
    resp = await pool.client.post("/upload/image", data=form(RED, filename, quote=False, **fields))
    assert resp.status == 400
    body = await resp.json()
    assert set(body) == {"error", "node_errors"} and body["error"]["type"] == "invalid_upload"
    root = store_root(pool)
    assert not any((root / "blobs").rglob("*")) and not any((root / "tmp").iterdir())


async def test_missing_image_part_and_non_multipart_are_400(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    resp = await pool.client.post("/upload/image", data={"overwrite": "true"})
    assert resp.status == 400 and (await resp.json())["error"]["type"] == "invalid_upload"
    resp = await pool.client.post("/upload/image", json={"image": "x"})
    assert resp.status == 400
    resp = await pool.client.post("/upload/mask", data=b"garbage")
    assert resp.status == 400


async def test_bodies_over_max_upload_are_413(make_pool: PoolFactory) -> None:
    limits = replace(LimitSettings(), max_upload=4096)
    pool = await make_pool(1, settings_overrides={"limits": limits})
    status, _ = await upload(pool.client, RED, "small.png")
    assert status == 200
    big = png((1, 2, 3)) + b"\0" * 5000
    resp = await pool.client.post("/upload/image", data=form(big, "big.png"))
    assert resp.status == 413
    assert (await resp.json())["error"]["type"] == "request_too_large"

    body, content_type = raw_multipart("big.png", big)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    resp = await pool.client.post(
        "/upload/image", data=chunks(), headers={"Content-Type": content_type}
    )
    assert resp.status == 413
    assert not any((store_root(pool) / "tmp").iterdir())


def raw_multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    head = (
        f'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + data + b"\r\n--XyZ--\r\n", "multipart/form-data; boundary=XyZ"
