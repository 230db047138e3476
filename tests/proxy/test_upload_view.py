"""GET /view of inputs and /object_info's LoadImage list come from the store."""

from __future__ import annotations

from support import PoolFactory
from upload_support import pixel, png, upload


async def test_view_input_is_served_from_the_store(make_pool: PoolFactory) -> None:
    pool = await make_pool(3)
    data = png((10, 20, 30), (16, 16))
    await upload(pool.client, data, "in.png", subfolder="sub")
    resp = await pool.client.get(
        "/view", params={"filename": "in.png", "subfolder": "sub", "type": "input"}
    )
    assert resp.status == 200 and await resp.read() == data
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"] == 'filename="in.png"'
    etag = resp.headers["ETag"]
    assert resp.headers["Accept-Ranges"] == "bytes"
    ranged = await pool.client.get(
        "/api/view",
        params={"filename": "in.png [input]", "subfolder": "sub"},
        headers={"Range": "bytes=0-7"},
    )
    assert ranged.status == 206 and await ranged.read() == data[:8]
    again = await pool.client.get(
        "/view",
        params={"filename": "in.png", "subfolder": "sub", "type": "input"},
        headers={"If-None-Match": etag},
    )
    assert again.status == 304


async def test_view_input_refusals_match_comfyui(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    await upload(pool.client, png((1, 1, 1)), "in.png")
    cases = [
        ({"filename": "../../etc/passwd", "type": "input"}, 400),
        ({"filename": "/etc/passwd", "type": "input"}, 400),
        ({"filename": "in.png", "type": "input", "subfolder": "../.."}, 403),
        ({"filename": "nope.png", "type": "input"}, 404),
        ({"filename": "in.png", "type": "input", "subfolder": "other"}, 404),
    ]
    for params, status in cases:
        resp = await pool.client.get("/view", params=params)
        assert resp.status == status, params


async def test_view_preview_and_channel_of_an_input(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    await upload(pool.client, png((200, 100, 50), alpha=128), "a.png")
    resp = await pool.client.get("/view", params={"filename": "a.png [input]", "channel": "a"})
    assert resp.status == 200 and pixel(await resp.read())[3] == 128
    resp = await pool.client.get(
        "/view",
        params={"filename": "a.png", "type": "input", "preview": "jpeg;80", "channel": "rgb"},
    )
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"


async def test_uploaded_temp_and_output_files_are_viewable(make_pool: PoolFactory) -> None:
    pool = await make_pool(2)
    data = png((5, 6, 7))
    await upload(pool.client, data, "clip.png", type="temp", subfolder="clipspace")
    params = {"filename": "clip.png", "subfolder": "clipspace", "type": "temp"}
    resp = await pool.client.get("/view", params=params)
    assert resp.status == 200 and await resp.read() == data


async def test_object_info_lists_uploaded_inputs(make_pool: PoolFactory) -> None:
    pool = await make_pool(2, primary="gpu0")
    await upload(pool.client, png((1, 1, 1)), "b.png")
    await upload(pool.client, png((2, 2, 2)), "a.png")
    await upload(pool.client, png((3, 3, 3)), "c.png", subfolder="sub")
    await upload(pool.client, png((4, 4, 4)), "t.png", type="temp")
    await upload(pool.client, b"not an image", "notes.txt")
    (pool.emulators["gpu0"].dirs.folder("input") / "local.png").write_bytes(png((9, 9, 9)))
    expected = ["a.png", "b.png", "sub/c.png"]
    for path in ("/object_info", "/api/object_info"):
        info = await (await pool.client.get(path)).json()
        assert info["LoadImage"]["input"]["required"]["image"][0] == expected
        assert info["LoadImageMask"]["input"]["required"]["image"][0] == expected
        assert "KSampler" in info
    for path in ("/object_info/LoadImage", "/api/object_info/LoadImage"):
        one = await (await pool.client.get(path)).json()
        assert list(one) == ["LoadImage"]
        assert one["LoadImage"]["input"]["required"]["image"] == [
            expected,
            {"image_upload": True},
        ]
    other = await (await pool.client.get("/object_info/EmptyImage")).json()
    assert list(other) == ["EmptyImage"]
    assert await (await pool.client.get("/object_info/Nope")).json() == {}
