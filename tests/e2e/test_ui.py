"""The real ComfyUI web UI (comfyui-frontend-package 1.27.10) through the
balancer with 2 emulated backends, driven in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from .browser import UiPage
from .harness import UiPool

# LoadImage -> ImageInvert -> SaveImage, built with the UI's own graph API.
BUILD_I2I = """() => {
  app.graph.clear();
  const load = LiteGraph.createNode('LoadImage');
  const invert = LiteGraph.createNode('ImageInvert');
  const save = LiteGraph.createNode('SaveImage');
  load.pos = [50, 100]; invert.pos = [420, 100]; save.pos = [700, 100];
  for (const node of [load, invert, save]) app.graph.add(node);
  load.connect(0, invert, 0);
  invert.connect(0, save, 0);
  app.canvas.setDirty(true, true);
}"""

# Where the LoadImage node's "choose file to upload" button is on the screen.
UPLOAD_BUTTON = """() => {
  const node = app.graph.nodes.find((n) => n.type === 'LoadImage');
  const button = node.widgets.find((w) => w.type === 'button');
  const y = button.y ?? button.last_y;
  if (!(y > 0)) return null;  // not drawn yet
  const [cx, cy] = app.canvas.ds.convertOffsetToCanvas(
      [node.pos[0] + node.size[0] / 2, node.pos[1] + y + 10]);
  const rect = app.canvas.canvas.getBoundingClientRect();
  const ratio = app.canvas.canvas.width / rect.width;
  return [rect.left + cx / ratio, rect.top + cy / ratio];
}"""


# The LoadImage node shows this file name.
LOAD_IMAGE_IS = """(name) =>
  app.graph.nodes.find((n) => n.type === 'LoadImage').widgets[0].value === name"""


def running_on(pool: UiPool, prompt_id: str) -> str | None:
    for name, emu in pool.emulators.items():
        running = emu.queue.running
        if running is not None and running.prompt_id == prompt_id:
            return name
    return None


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_ui_loads_without_failed_requests(ui: UiPage) -> None:
    async with ui.step("1-load"):
        await ui.open()
        types = await ui.page.evaluate("() => app.graph.nodes.map((n) => n.type).sort()")
        assert "CheckpointLoaderSimple" in types and "SaveImage" in types
        await ui.page.wait_for_load_state("networkidle")
        assert ui.unexpected_failures() == []


async def test_default_workflow_runs_and_shows_in_queue_panel(ui: UiPage, pool: UiPool) -> None:
    await ui.open()
    async with ui.step("2-run"):
        await ui.run()
        progress = await ui.wait_event("progress")
        prompt_id = progress["prompt_id"]
        await ui.wait_event("execution_success", f"d.prompt_id === {prompt_id!r}")
        owner = next(n for n, e in pool.emulators.items() if prompt_id in e.history)
        src = await ui.save_image_src(f"@{owner}")
        assert "filename=ComfyUI_00001_.png" in src
    async with ui.step("2-queue-panel"):
        await ui.page.locator(".queue-tab-button").click()
        panel = ui.page.locator(".sidebar-content-container")
        await panel.locator("img").first.wait_for()
        history = await get_json(f"{pool.url}/history")
        assert list(history) == [prompt_id]
    assert ui.unexpected_failures() == []


async def test_second_job_runs_on_the_other_backend(ui: UiPage, pool: UiPool) -> None:
    await ui.open()
    async with ui.step("3-first"):
        for emulator in pool.emulators.values():
            emulator.pause()  # a job starts, then waits before its first node
        await ui.run()
        first = (await ui.wait_event("execution_start"))["prompt_id"]
        busy = running_on(pool, first)
        assert busy is not None  # held there until the test resumes it
    async with ui.step("3-second"):
        other = next(name for name in pool.emulators if name != busy)
        pool.emulators[other].resume()
        await ui.run()
        done = await ui.wait_event("execution_success", f"d.prompt_id !== {first!r}")
        assert done["prompt_id"] in pool.emulators[other].history
        await ui.save_image_src(f"@{other}")
        history = await get_json(f"{pool.url}/history/{done['prompt_id']}")
        images = history[done["prompt_id"]]["outputs"]["9"]["images"]
        assert images[0]["subfolder"] == f"@{other}"
    pool.emulators[busy].resume()
    await ui.wait_event("execution_success", f"d.prompt_id === {first!r}")


async def test_upload_then_image_to_image(ui: UiPage, pool: UiPool, tmp_path: Path) -> None:
    await ui.open()
    picture = tmp_path / "mine.png"
    Image.new("RGB", (32, 24), (200, 40, 10)).save(picture)
    async with ui.step("4-upload"):
        await ui.page.evaluate(BUILD_I2I)
        x, y = await (await ui.page.wait_for_function(UPLOAD_BUTTON)).json_value()
        async with ui.page.expect_response(lambda r: "/upload/image" in r.url) as uploaded:
            async with ui.page.expect_file_chooser() as chooser:
                await ui.page.mouse.move(x, y)
                await ui.page.mouse.click(x, y, delay=50)
            await (await chooser.value).set_files(picture)
        assert (await uploaded.value).status == 200
        # The UI sets the widget once it has read the answer, which may be
        # after playwright saw the response: wait for it, not a race with it.
        value = "mine.png"
        await ui.page.wait_for_function(LOAD_IMAGE_IS, arg=value)
        holders = [
            n for n, e in pool.emulators.items() if (e.dirs.folder("input") / value).exists()
        ]
    async with ui.step("4-run"):
        await ui.run()
        done = await ui.wait_event("execution_success")
        owner = next(n for n, e in pool.emulators.items() if done["prompt_id"] in e.history)
        assert owner not in holders  # the upload reached it only through the balancer
        await ui.save_image_src(f"@{owner}")
    assert ui.unexpected_failures() == [], ui.failures


async def test_interrupt_from_the_ui(ui: UiPage, pool: UiPool) -> None:
    await ui.open()
    async with ui.step("5-interrupt"):
        for emulator in pool.emulators.values():
            emulator.pause()  # the job starts, then stays running until interrupted
        await ui.run()
        prompt_id = (await ui.wait_event("execution_start"))["prompt_id"]
        owner = running_on(pool, prompt_id)
        assert owner is not None
        await ui.page.get_by_role("button", name="Cancel current run").first.click()
        await ui.wait_event("execution_interrupted", f"d.prompt_id === {prompt_id!r}")
        await pool.emulators[owner].wait_idle(30.0)
        await ui.page.locator(".queue-tab-button").click()
        panel = ui.page.locator(".sidebar-content-container")
        await panel.get_by_text("Cancelled").first.wait_for()


async def test_reload_mid_job_keeps_progress_and_result(ui: UiPage, pool: UiPool) -> None:
    await ui.open()
    async with ui.step("6-before-reload"):
        sid = await ui.client_id()
        for emulator in pool.emulators.values():
            emulator.pause()  # the job starts, then waits before its first node
        await ui.run()
        prompt_id = (await ui.wait_event("execution_start"))["prompt_id"]
        owner = running_on(pool, prompt_id)
        assert owner is not None
    async with ui.step("6-after-reload"):
        await ui.page.reload()
        await ui.loaded()
        assert await ui.client_id() == sid  # reconnected with its sid
        for emulator in pool.emulators.values():
            emulator.resume()
        await ui.wait_event("progress", f"d.prompt_id === {prompt_id!r}")
        await ui.wait_event("execution_success", f"d.prompt_id === {prompt_id!r}")
        await ui.save_image_src(f"@{owner}")


async def test_first_screen_lists_templates_and_one_runs(ui: UiPage, pool: UiPool) -> None:
    """A fresh user's first screen is the template browser: it lists the
    templates package's workflows (through the balancer, from the primary),
    and the weight-free "Image Generation" template runs on a backend."""
    async with aiohttp.ClientSession() as http:
        fresh = {"Comfy.TutorialCompleted": False}
        async with http.post(pool.url + "/api/settings", json=fresh) as resp:
            assert resp.status == 200
    async with ui.step("7-templates"):
        await ui.page.goto(pool.url + "/")
        dialog = ui.page.get_by_role("dialog")
        await dialog.get_by_text("Get Started with a Template").wait_for()
        default = dialog.get_by_test_id("template-workflow-default")
        await default.wait_for()
        cards = dialog.locator(".template-card")
        assert await cards.count() >= 5
        assert await dialog.get_by_text("No available options").count() == 0
        assert "Image Generation" in await default.inner_text()
    async with ui.step("7-template-runs"):
        await default.click()
        await dialog.wait_for(state="hidden")
        await ui.loaded()
        types = await ui.page.evaluate("() => app.graph.nodes.map((n) => n.type).sort()")
        assert "CheckpointLoaderSimple" in types and "KSampler" in types
        await ui.run()
        progress = await ui.wait_event("progress")
        prompt_id = progress["prompt_id"]
        await ui.wait_event("execution_success", f"d.prompt_id === {prompt_id!r}")
        owner = next(n for n, e in pool.emulators.items() if prompt_id in e.history)
        assert "filename=ComfyUI_00001_.png" in await ui.save_image_src(f"@{owner}")
    assert ui.unexpected_failures() == []
