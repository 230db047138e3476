"""The web UI behind API keys: sign in once in the browser, then the UI works
as without keys, as its key's tenant; sign out; another key sees only its own."""

from __future__ import annotations

from typing import Any

from .browser import UiPage
from .conftest import KEYS
from .harness import UiPool

HISTORY = "async () => (await fetch('/api/history')).json()"


async def test_sign_in_run_reload_sign_out_and_switch_tenant(
    keyed_ui: UiPage, keyed_pool: UiPool
) -> None:
    ui = keyed_ui
    async with ui.step("7-sent-to-sign-in"):
        await ui.page.goto(ui.base + "/")
        assert ui.path() == "/balancer/login?next=%2F"
        await ui.sign_in(KEYS["alice"])
        assert ui.path() == "/"
        await ui.loaded()
    async with ui.step("7-alice-runs"):
        await ui.run()
        prompt_id = (await ui.wait_event("progress"))["prompt_id"]
        await ui.wait_event("execution_success", f"d.prompt_id === {prompt_id!r}")
        owner = next(n for n, e in keyed_pool.emulators.items() if prompt_id in e.history)
        src = await ui.save_image_src(f"@{owner}")
        assert "filename=ComfyUI_00001_.png" in src
        assert ui.unexpected_failures() == []  # every request the UI made was signed in
    async with ui.step("7-reload"):
        await ui.page.reload()
        await ui.loaded()
        assert ui.path() == "/"
        history: dict[str, Any] = await ui.page.evaluate(HISTORY)
        assert list(history) == [prompt_id]
    async with ui.step("7-sign-out"):
        await ui.sign_out()
        assert ui.path() == "/balancer/login"
        await ui.page.goto(ui.base + "/")
        assert ui.path() == "/balancer/login?next=%2F"  # signed out: sent to sign in
    async with ui.step("7-bob"):
        await ui.sign_in(KEYS["bob"])
        await ui.loaded()
        await ui.page.locator(".queue-tab-button").click()
        panel = ui.page.locator(".sidebar-content-container")
        await panel.get_by_text("No Tasks Found").first.wait_for()
        assert await panel.locator("img").count() == 0
        assert await ui.page.evaluate(HISTORY) == {}
