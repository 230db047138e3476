"""/templates/*: the comfyui-workflow-templates package (the version ComfyUI
0.3.64 pins), served as ComfyUI serves it: its files as they are, under
/templates/ only (no /api alias), index files not cached, thumbnails cached."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from balancer.emulator.frontend import TEMPLATES_PIN, templates_root

ROOT = templates_root()
pytestmark = pytest.mark.skipif(ROOT is None, reason="the ui extra is not installed")


async def test_the_package_index_and_a_template_are_served(client: TestClient[Any, Any]) -> None:
    assert ROOT is not None
    index = await client.get("/templates/index.json")
    assert index.status == 200 and index.headers["Cache-Control"] == "no-cache"
    categories = await index.json()
    assert categories == json.loads((ROOT / "index.json").read_text())
    names = [t["name"] for c in categories for t in c["templates"]]
    assert "default" in names and len(names) > 50
    workflow = await client.get("/templates/default.json")
    assert await workflow.read() == (ROOT / "default.json").read_bytes()
    thumb = await client.get("/templates/default-1.webp")
    assert thumb.status == 200 and thumb.headers["Cache-Control"] == "public, max-age=86400"
    assert (await client.get("/templates/index.fr.json")).status == 200


async def test_templates_outside_the_package_are_404(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/templates/nope.json")).status == 404
    assert (await client.get("/templates/..%2F__init__.py")).status == 404
    assert (await client.get("/api/templates/index.json")).status == 404


async def test_system_stats_names_the_installed_and_pinned_versions(
    client: TestClient[Any, Any],
) -> None:
    system = (await (await client.get("/system_stats")).json())["system"]
    assert system["required_templates_version"] == TEMPLATES_PIN
    assert system["installed_templates_version"] == TEMPLATES_PIN
