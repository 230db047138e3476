"""The emulator serves the web UI and the routes it calls at load."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from balancer.emulator.frontend import web_root

needs_ui = pytest.mark.skipif(web_root() is None, reason="the `ui` extra is not installed")


@needs_ui
async def test_index_and_static_files(client: TestClient[Any, Any]) -> None:
    index = await client.get("/")
    assert index.status == 200 and '<div id="vue-app">' in await index.text()
    assert index.headers["Cache-Control"] == "no-cache"
    assert index.headers["Pragma"] == "no-cache" and index.headers["Expires"] == "0"
    extensions = await (await client.get("/api/extensions")).json()
    assert "/extensions/core/groupNode.js" in extensions
    script = await client.get(extensions[0])
    assert script.status == 200 and script.headers["Cache-Control"] == "no-cache"
    assert (await client.get("/../pyproject.toml")).status == 404
    assert (await client.get("/api/assets/nope.js")).status == 404  # no /api alias


async def test_load_time_routes(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/templates/index.json")).status == 200
    assert (await client.get("/templates/nope.json")).status == 404
    assert await (await client.get("/api/i18n")).json() == {}
    assert await (await client.get("/api/workflow_templates")).json() == {}
    folders = [f["name"] for f in await (await client.get("/api/experiment/models")).json()]
    assert "checkpoints" in folders and "configs" not in folders
    ckpts = await (await client.get("/api/experiment/models/checkpoints")).json()
    assert "v1-5-pruned-emaonly-fp16.safetensors" in [c["name"] for c in ckpts]
    assert (await client.get("/api/experiment/models/nope")).status == 404
    raw = await (await client.get("/internal/logs/raw")).json()
    assert raw["size"] == {"cols": 80, "rows": 24} and raw["entries"]
    assert isinstance(await (await client.get("/internal/logs")).json(), str)
    assert "checkpoints" in await (await client.get("/internal/folder_paths")).json()
    assert await (await client.get("/internal/files/output")).json() == []
    bad = await client.get("/internal/files/nope")
    assert bad.status == 400 and await bad.json() == {"error": "Invalid directory type"}
    assert (await client.get("/api/internal/logs")).status == 404


async def test_user_data_lives_under_base_dir(client: TestClient[Any, Any]) -> None:
    assert await (await client.get("/api/users")).json() == {"storage": "server", "migrated": False}
    assert await (await client.get("/api/settings")).json() == {}
    assert (await client.post("/api/settings", json={"a": 1})).status == 200
    assert await (await client.get("/api/settings/a")).json() == 1
    assert await (await client.get("/api/settings/b")).json() is None
    saved = await client.post("/api/userdata/workflows%2Fx.json?full_info=true", data=b"{}")
    info = await saved.json()
    assert info["path"] == "workflows/x.json" and info["size"] == 2
    listing = await client.get("/api/userdata?dir=workflows&split=true")
    assert await listing.json() == [["x.json", "x.json"]]
    assert (await client.get("/api/userdata?dir=nothing")).status == 404
