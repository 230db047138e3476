"""A Chromium page on the balancer's UI that records what the UI fetched and
what its API object dispatched, and screenshots a step that fails."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Page, Response

# Requests a fresh ComfyUI 0.3.64 itself answers with 404 while the UI loads:
# the optional user.css (web root and user dir), the workflows/subgraphs
# listings before anything was saved, and the user's template customisations.
ALLOWED_FAILURES = (
    ("GET", "/user.css", 404),
    ("GET", "/api/userdata/user.css", 404),
    ("GET", "/api/userdata?dir=workflows&", 404),
    ("GET", "/api/userdata?dir=subgraphs%2F&", 404),
    ("GET", "/api/userdata/comfy.templates.json", 404),
    # a new LoadImage node previews its still empty value
    ("GET", "/api/view?type=input&filename=undefined&", 404),
)

EVENTS = (
    "status",
    "execution_start",
    "executing",
    "progress",
    "executed",
    "execution_success",
    "execution_error",
    "execution_interrupted",
)
LOADED = "() => window.app?.graph?.nodes?.length > 0 && window.app.api.socket?.readyState === 1"
RECORD = """(types) => {
  window.__events = [];
  for (const t of types)
    app.api.addEventListener(t, (e) => window.__events.push({type: t, detail: e.detail}));
}"""
# The default graph spans ~1700 px; zoom out so every node, Save Image too, is drawn.
FIT = """() => {
  app.canvas.ds.scale = 0.7;
  app.canvas.ds.offset = [10, 30];
  app.canvas.setDirty(true, true);
}"""


@dataclass
class UiPage:
    page: Page
    base: str
    shots: Path
    failures: list[tuple[str, str, int]] = field(default_factory=list)

    def attach(self) -> None:
        self.page.on("response", self._on_response)

    def _on_response(self, response: Response) -> None:
        if response.status >= 400 and response.url.startswith(self.base):
            path = response.url[len(self.base) :]
            self.failures.append((response.request.method, path, response.status))

    def unexpected_failures(self) -> list[tuple[str, str, int]]:
        def allowed(method: str, path: str, status: int) -> bool:
            return any(
                method == m
                and (path == p or (p.endswith("&") and path.startswith(p)))
                and s == status
                for m, p, s in ALLOWED_FAILURES
            )

        return [f for f in self.failures if not allowed(*f)]

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        """Run one step; on failure keep a screenshot of the page under tmp_path."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                await self.page.screenshot(path=str(self.shots / f"{name}.png"))
            raise

    async def open(self) -> None:
        await self.page.goto(self.base + "/")
        await self.loaded()

    async def loaded(self) -> None:
        """The graph is drawn and the socket is open; start recording API events."""
        await self.page.wait_for_function(LOADED)
        await self.page.evaluate(FIT)
        await self.page.evaluate(RECORD, list(EVENTS))

    async def run(self) -> None:
        """Queue the graph with the Run button, as a user does."""
        await self.page.get_by_role("button", name="Run", exact=True).first.click()

    async def wait_event(self, type_: str, where: str = "true") -> Any:
        """The first recorded event of that type for which `where` (JS over `d`) holds."""
        match = f"e.type === {type_!r} && ((d) => {where})(e.detail)"
        script = f"() => window.__events.find((e) => {match})?.detail"
        handle = await self.page.wait_for_function(script)
        return await handle.json_value()

    async def save_image_src(self, subfolder: str) -> str:
        """Wait until the Save Image node shows an image from that subfolder."""
        script = """(sub) => {
          const node = app.graph.nodes.find((n) => n.type === 'SaveImage');
          const img = node?.imgs?.find((i) => i.complete && i.naturalWidth > 0 &&
              new URL(i.src).searchParams.get('subfolder') === sub);
          return img ? img.src : null;
        }"""
        handle = await self.page.wait_for_function(script, arg=subfolder)
        return str(await handle.json_value())

    async def client_id(self) -> str:
        return str(await self.page.evaluate("() => app.api.clientId"))

    async def sign_in(self, key: str) -> None:
        """On the sign-in page: type the key, submit, and land where `next` said."""
        await self.page.locator("#key").fill(key)
        async with self.page.expect_navigation():
            await self.page.get_by_role("button", name="Sign in").click()

    async def sign_out(self) -> None:
        """The sign-in page shows who is signed in and a Sign out button."""
        await self.page.goto(self.base + "/balancer/login")
        async with self.page.expect_navigation():
            await self.page.get_by_role("button", name="Sign out").click()

    def path(self) -> str:
        """The page's URL without the balancer's origin."""
        return self.page.url[len(self.base) :]
