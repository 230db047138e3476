"""POST /upload/image|mask naming and GET /view rules, against the recordings."""

from __future__ import annotations

import io
import json
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image

from .emu_helpers import emulator_of, run_prompt, transcript, workflow


def _png(color: tuple[int, int, int, int], size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def _upload(
    client: TestClient[Any, Any],
    data: bytes,
    filename: str,
    route: str = "/upload/image",
    **fields: str,
) -> Any:
    form = FormData()
    form.add_field("image", data, filename=filename, content_type="image/png")
    for key, value in fields.items():
        form.add_field(key, value)
    return await client.post(route, data=form)


async def test_upload_naming_sequence_matches_recording(client: TestClient[Any, Any]) -> None:
    recorded = transcript("upload_image.json")
    first, second = _png((1, 2, 3, 255)), _png((9, 9, 9, 255))
    steps = [
        (first, "lb_input.png", {}),
        (first, "lb_input.png", {}),
        (second, "lb_input.png", {}),
        (second, "lb_input.png", {"overwrite": "true"}),
        (first, "lb_input.png", {"subfolder": "lb", "type": "input"}),
        (first, "../evil.png", {}),  # aiohttp sends it as "..%2Fevil.png"
    ]
    for (data, name, fields), record in zip(steps, recorded, strict=True):
        resp = await _upload(client, data, name, **fields)
        assert resp.status == record["status"]
        assert await resp.json() == record["body"]
    input_dir = emulator_of(client).dirs.folder("input")
    assert (input_dir / "lb_input.png").read_bytes() == second
    assert (input_dir / "lb" / "lb_input.png").read_bytes() == first


async def _raw_upload(client: TestClient[Any, Any], data: bytes, filename: str) -> Any:
    """A multipart body with the filename unescaped, as curl sends it."""
    boundary = "emulatorboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return await client.post("/upload/image", data=body, headers=headers)


async def test_upload_traversal_and_bad_requests(client: TestClient[Any, Any]) -> None:
    data = _png((1, 1, 1, 255))
    assert (await _raw_upload(client, data, "../evil2.png")).status == 400
    assert (await _raw_upload(client, data, "x/../../evil3.png")).status == 400
    assert (await _upload(client, data, "a.png", subfolder="../..")).status == 400
    assert (await _upload(client, data, "a.png", type="models")).status == 500
    plain = await _upload(client, data, "plain.png")
    assert await plain.json() == {"name": "plain.png", "subfolder": "", "type": "input"}
    no_file = await client.post("/upload/image", data=FormData({"overwrite": "1"}))
    assert no_file.status == 400


async def test_uploaded_file_feeds_loadimage_and_object_info(client: TestClient[Any, Any]) -> None:
    prompt = workflow("upload_loadimage.json")
    rejected = await client.post("/prompt", json={"prompt": prompt})
    assert rejected.status == 400
    await _upload(client, _png((10, 20, 30, 255), 64), "lb_input.png")
    info = await (await client.get("/object_info/LoadImage")).json()
    assert info["LoadImage"]["input"]["required"]["image"][0] == ["lb_input.png"]
    entry = await run_prompt(client, prompt)
    recorded = transcript("history_upload_loadimage.json")["history"]
    (recorded_entry,) = recorded.values()
    assert entry["outputs"] == recorded_entry["outputs"]
    path = emulator_of(client).dirs.folder("output") / "uploaded_00001_.png"
    with Image.open(path) as img:
        assert img.size == (32, 32)
        assert img.getpixel((5, 5)) == (245, 235, 225)


async def test_upload_mask_applies_alpha(client: TestClient[Any, Any]) -> None:
    await _upload(client, _png((200, 100, 50, 255)), "orig.png")
    ref = json.dumps({"filename": "orig.png", "type": "input", "subfolder": ""})
    resp = await _upload(
        client, _png((0, 0, 0, 40)), "mask.png", route="/upload/mask", original_ref=ref
    )
    assert await resp.json() == {"name": "mask.png", "subfolder": "", "type": "input"}
    with Image.open(emulator_of(client).dirs.folder("input") / "mask.png") as img:
        assert img.mode == "RGBA" and img.getpixel((0, 0)) == (200, 100, 50, 40)
    missing = json.dumps({"filename": "nope.png [input]"})
    quirk = await _upload(
        client, _png((0, 0, 0, 1)), "m2.png", route="/upload/mask", original_ref=missing
    )
    assert quirk.status == 200  # ComfyUI answers success and writes nothing
    assert not (emulator_of(client).dirs.folder("input") / "m2.png").exists()


async def test_view_rules(client: TestClient[Any, Any]) -> None:
    recorded = transcript("view_output.json")
    entry = await run_prompt(client, workflow("fast.json"))
    image = entry["outputs"]["3"]["images"][0]
    ok = await client.get("/view", params=image)
    assert ok.status == 200
    body = await ok.read()
    assert body[:16].hex() == recorded["ok"]["first_16_bytes_hex"]
    for header in ("Content-Disposition", "Content-Type", "Etag", "Last-Modified", "Accept-Ranges"):
        assert header in ok.headers
    assert ok.headers["Content-Disposition"] == 'filename="fast_00001_.png"'
    etag = ok.headers["Etag"]
    assert (await client.get("/view", params=image, headers={"If-None-Match": etag})).status == 304
    ranged = await client.get("/view", params=image, headers={"Range": "bytes=0-7"})
    assert ranged.status == 206 and await ranged.read() == body[:8]
    missing = await client.get("/view?filename=nope.png&type=output")
    assert missing.status == recorded["missing"]["status"] and await missing.read() == b""
    traversal = await client.get("/view?filename=../../etc/passwd&type=output")
    assert traversal.status == recorded["traversal"]["status"]
    assert (await client.get("/view")).status == 404
    assert (await client.get("/view?filename=/etc/passwd")).status == 400
    assert (await client.get("/view?filename=x.png&type=models")).status == 400
    assert (await client.get("/view?filename=x.png&subfolder=../..")).status == 403
    annotated = await client.get(
        "/api/view", params={"filename": "fast_00001_.png [output]", "type": "input"}
    )
    assert annotated.status == 200
    webp = await client.get("/view", params={**image, "preview": "webp;50"})
    assert webp.headers["Content-Type"] == "image/webp"
    alpha = await client.get("/view", params={**image, "channel": "a"})
    with Image.open(io.BytesIO(await alpha.read())) as img:
        assert img.getpixel((0, 0))[3] == 255
    rgb = await client.get("/view", params={**image, "channel": "rgb"})
    with Image.open(io.BytesIO(await rgb.read())) as img:
        assert img.mode == "RGB"
