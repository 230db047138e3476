"""Pool-wide catalogue routes: the union of the healthy backends' catalogues,
cached until a catalogue changes, with an ETag."""

from __future__ import annotations

from dataclasses import replace

from support import Pool, PoolFactory

FLUX = "flux1-dev.safetensors"
SDXL = "sd_xl_base_1.0.safetensors"


async def uneven(make_pool: PoolFactory) -> Pool:
    return await make_pool(
        2,
        options_for={
            "gpu0": {
                "checkpoints": (SDXL,),
                "models": {"loras": ("detail.safetensors",), "embeddings": ("easyneg.pt",)},
                "without_nodes": frozenset({"ImageInvert"}),
            },
            "gpu1": {
                "checkpoints": (SDXL, FLUX),
                "extra_nodes": ("SharpenPlus",),
            },
        },
    )


def combo(info: dict, class_type: str, name: str) -> list[str]:  # type: ignore[type-arg]
    values: list[str] = info[class_type]["input"]["required"][name][0]
    return values


async def test_object_info_is_the_union_of_the_healthy_backends(make_pool: PoolFactory) -> None:
    pool = await uneven(make_pool)
    resp = await pool.client.get("/object_info")
    assert resp.status == 200
    info = await resp.json()
    assert {"ImageInvert", "SharpenPlus", "KSampler"} <= info.keys()
    assert combo(info, "CheckpointLoaderSimple", "ckpt_name") == [FLUX, SDXL]
    assert combo(info, "LoraLoader", "lora_name") == ["detail.safetensors"]
    recorded = pool.emulators["gpu0"].catalog.class_names()
    assert list(info)[: len(recorded)] == recorded  # ComfyUI's order is kept
    one = await (await pool.client.get("/api/object_info/SharpenPlus")).json()
    assert list(one) == ["SharpenPlus"]
    assert await (await pool.client.get("/object_info/NoSuchNode")).json() == {}

    pool.balancer.registry.get("gpu1").mark_down("test")  # type: ignore[union-attr]
    info = await (await pool.client.get("/object_info")).json()
    assert "SharpenPlus" not in info
    assert combo(info, "CheckpointLoaderSimple", "ckpt_name") == [SDXL]


async def test_models_and_embeddings_are_unions_too(make_pool: PoolFactory) -> None:
    pool = await uneven(make_pool)
    assert await (await pool.client.get("/models/checkpoints")).json() == [FLUX, SDXL]
    assert await (await pool.client.get("/api/models/loras")).json() == ["detail.safetensors"]
    assert "checkpoints" in await (await pool.client.get("/models")).json()
    assert (await pool.client.get("/models/no_such_folder")).status == 404
    assert await (await pool.client.get("/embeddings")).json() == ["easyneg"]


async def test_answers_carry_an_etag_that_changes_with_a_catalogue(
    make_pool: PoolFactory,
) -> None:
    pool = await uneven(make_pool)
    first = await pool.client.get("/object_info")
    etag = first.headers["ETag"]
    again = await pool.client.get("/object_info", headers={"If-None-Match": etag})
    assert again.status == 304
    gpu0 = pool.emulators["gpu0"]
    gpu0.catalog = type(gpu0.catalog)(
        gpu0.dirs.folder("input"), replace(gpu0.options, checkpoints=(SDXL, "new.safetensors"))
    )
    assert (await pool.client.post("/balancer/backends/gpu0/refresh")).status == 200
    changed = await pool.client.get("/object_info", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag
    listed = combo(await changed.json(), "CheckpointLoaderSimple", "ckpt_name")
    assert listed == [FLUX, "new.safetensors", SDXL]
    for path in ("/models", "/models/checkpoints", "/embeddings"):
        tag = (await pool.client.get(path)).headers["ETag"]
        assert (await pool.client.get(path, headers={"If-None-Match": tag})).status == 304
