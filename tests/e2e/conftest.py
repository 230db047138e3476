"""End-to-end fixtures: 2 emulated backends, the balancer, and headless Chromium
(Debian's /usr/bin/chromium driven by Playwright; no browser download)."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from balancer.config.access_settings import ApiKey, AuthSettings

from .harness import CHROMIUM, CHROMIUM_ARGS, UiPool, ui_pool

playwright_api = pytest.importorskip("playwright.async_api")
frontend = pytest.importorskip("comfyui_frontend_package")
if shutil.which(CHROMIUM) is None:
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from .browser import UiPage  # noqa: E402

# 20 sampler steps of 40 ms: a job takes about a second, long enough to watch.
SPEED = {"time_scale": 1.0, "step_time": 0.04, "checkpoint_load_time": 0.1}
# How long any wait of the page may take (ms). It only bounds a hang: on a
# loaded machine a step that takes 1 s alone can take ten times that.
HANG_BOUND = 60_000
# Two client keys for the signed-in UI.
KEYS = {"alice": "alice-ui-key", "bob": "bob-ui-key"}


async def returning_user(url: str, headers: dict[str, str] | None = None) -> None:
    """A returning user: no first-run template browser over the graph."""
    async with aiohttp.ClientSession(headers=headers) as http:
        done = {"Comfy.TutorialCompleted": True}
        async with http.post(url + "/api/settings", json=done) as resp:
            assert resp.status == 200


@contextlib.asynccontextmanager
async def browser_page(pool: UiPool, shots: Path) -> AsyncIterator[UiPage]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 800})
            page.set_default_timeout(HANG_BOUND)
            # the UI asks api.comfy.org for release notes: answer it offline
            await page.route(lambda url: not url.startswith(pool.url), lambda r: r.abort())
            ui_page = UiPage(page, pool.url, shots)
            ui_page.attach()
            yield ui_page
        finally:
            await browser.close()


@pytest.fixture
def own_options() -> dict[str, dict[str, Any]]:
    """Options some backends have of their own (a test module overrides it)."""
    return {}


@pytest.fixture
async def pool(tmp_path: Path, own_options: dict[str, dict[str, Any]]) -> AsyncIterator[UiPool]:
    async with ui_pool(tmp_path / "servers", own=own_options, **SPEED) as running:
        await returning_user(running.url)
        yield running


@pytest.fixture
async def ui(pool: UiPool, tmp_path: Path) -> AsyncIterator[UiPage]:
    async with browser_page(pool, tmp_path) as page:
        yield page


@pytest.fixture
async def keyed_pool(tmp_path: Path) -> AsyncIterator[UiPool]:
    """The pool behind two client keys, alice and bob."""
    keys = tuple(ApiKey(n, hashlib.sha256(k.encode()).digest()) for n, k in KEYS.items())
    async with ui_pool(tmp_path / "servers", auth=AuthSettings(keys=keys), **SPEED) as running:
        for key in KEYS.values():
            await returning_user(running.url, {"X-API-Key": key})
        yield running


@pytest.fixture
async def keyed_ui(keyed_pool: UiPool, tmp_path: Path) -> AsyncIterator[UiPage]:
    async with browser_page(keyed_pool, tmp_path) as page:
        yield page
