"""POST /upload/mask replayed from upload_mask.json, case by case: status,
content type and body as ComfyUI answered, and what landed on disk (nothing
for its 200-but-nothing-written cases; a plain-text 500 for a malformed or
absent original_ref and for a mask of another size; otherwise the original's
RGB, the mask's alpha and the original's PNG text)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .emu_helpers import emulator_of, run_prompt, transcript

RECORDING = "upload_mask.json"
SERVER_ROOT = "/srv/comfyui-a/"


def png(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def original() -> bytes:
    """As described: RGBA 64x48, alpha 200 everywhere, tEXt comment+parameters."""
    image = Image.new("RGBA", (64, 48), (40, 90, 140, 200))
    return png(image, {"comment": "original for mask test", "parameters": "steps: 20"})


def mask_for(case: str) -> Image.Image:
    """The mask a case uploaded: a left-to-right alpha ramp, half size for the
    size case, no alpha at all for the RGB case."""
    if case == "mask_rgb_without_alpha":
        return Image.new("RGB", (64, 48), (0, 0, 0))
    size = (32, 24) if case == "mask_size_differs_from_original" else (64, 48)
    ramp = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size)
    mask = Image.new("RGBA", size, (0, 0, 0, 0))
    mask.putalpha(ramp)
    return mask


def form_of(record: dict[str, Any]) -> FormData:
    form = FormData()
    fields = record["form_fields"]
    if "image" in fields:
        filename = fields["image"].split("filename=")[1].rstrip(">")
        form.add_field("image", png(mask_for(record["case"])), filename=filename)
    for key in ("original_ref", "type", "subfolder"):
        if key in fields:
            form.add_field(key, fields[key])
    return form


def check_file(base: Path, record: dict[str, Any]) -> None:
    expected = record["result_file"]
    path = base / expected["path"].removeprefix(SERVER_ROOT)
    assert path.is_file() == expected["exists"], record["case"]
    if not expected["exists"]:
        return
    ref = json.loads(record["form_fields"]["original_ref"])
    original_path = base / ref["type"] / ref["subfolder"] / ref["filename"]
    with Image.open(path) as stored, Image.open(original_path) as source:
        assert (stored.format, stored.mode, list(stored.size)) == ("PNG", "RGBA", expected["size"])
        assert {k: v for k, v in stored.info.items() if isinstance(v, str)} == expected[
            "png_text_chunks"
        ]
        assert stored.convert("RGB").tobytes() == source.convert("RGB").tobytes()
        mask_alpha = mask_for(record["case"]).convert("RGBA").getchannel("A")
        assert stored.getchannel("A").tobytes() == mask_alpha.tobytes()


async def test_upload_mask_replays_every_recorded_case(client: TestClient[Any, Any]) -> None:
    records = transcript(RECORDING)
    base = emulator_of(client).dirs.base
    replayed = set()
    for record in records:
        case = record["case"]
        if case == "setup_upload_original_to_input":
            form = FormData()
            form.add_field("image", original(), filename="mask_orig.png")
            resp = await client.post("/upload/image", data=form)
            assert (resp.status, await resp.json()) == (record["status"], record["body"])
        elif case == "setup_prompt_writes_output":
            entry = await run_prompt(client, record["prompt"])
            assert entry["outputs"] == record["history_outputs"]
        elif record.get("request") == "POST /upload/mask":
            resp = await client.post("/upload/mask", data=form_of(record))
            assert resp.status == record["status"], case
            body, text = record["body"], await resp.text()
            assert (json.loads(text) if isinstance(body, dict) else text or None) == body, case
            if record["content_type"] is not None:
                assert resp.content_type == record["content_type"].split(";")[0], case
            if "result_file" in record:
                check_file(base, record)
        elif record.get("request", "").startswith("GET /view"):
            resp = await client.get(record["request"].removeprefix("GET "))
            assert resp.status == record["status"], case
        elif case == "input_dir_listing_after":
            listed = sorted(
                str(p.relative_to(base / "input")) for p in (base / "input").rglob("*.png")
            )
            assert listed == record["files"]
        else:
            continue
        replayed.add(case)
    # every record but the server's log lines was replayed
    assert {r["case"] for r in records} - replayed == {"server_log_error_lines"}
