"""The balancer and its emulated backends on real loopback ports, in this
process, plus a Chromium page that records every response the UI got."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import CHROMIUM, CHROMIUM_ARGS  # noqa: F401  (re-exported for conftest)

from balancer.app import create_app
from balancer.config.access_settings import AuthSettings
from balancer.config.backend_settings import BackendSettings, ProbeSettings
from balancer.config.settings import Settings
from balancer.emulator import EMULATOR, Emulator, EmulatorOptions, create_emulator_app
from balancer.runner import Running, start, stop_all


@dataclass
class UiPool:
    url: str
    emulators: dict[str, Emulator]
    backends: dict[str, str]
    running: list[Running] = field(default_factory=list)


@contextlib.asynccontextmanager
async def ui_pool(
    root: Path,
    count: int = 2,
    own: dict[str, dict[str, Any]] | None = None,
    auth: AuthSettings | None = None,
    **options: Any,
) -> AsyncIterator[UiPool]:
    """`count` emulators (gpu0 primary) and the balancer, prober on a fast
    interval; `own` gives some backends options of their own; `auth` puts
    it behind API keys."""
    running: list[Running] = []
    emulators: dict[str, Emulator] = {}
    backends: dict[str, str] = {}
    try:
        for i in range(count):
            name = f"gpu{i}"
            mine = {**options, **(own or {}).get(name, {})}
            opts = EmulatorOptions(name=name, base_dir=root / name, **mine)
            app = create_emulator_app(opts)
            emulators[name] = app[EMULATOR]
            served = await start(app, "127.0.0.1", 0, shutdown_timeout=1.0)
            running.append(served)
            backends[name] = served.url
        settings = Settings(
            backends=tuple(
                BackendSettings(name=name, url=url, primary=name == "gpu0")
                for name, url in backends.items()
            ),
            # a fast interval; the timeout and staleness only bound a hang
            probe=ProbeSettings(interval=0.1, timeout=5.0, stale_after=10.0),
            data_dir=str(root / "balancer-data"),
            auth=auth or AuthSettings(),
        )
        front = await start(create_app(settings), "127.0.0.1", 0, shutdown_timeout=1.0)
        running.append(front)  # stop_all stops it first: it holds channels to the backends
        yield UiPool(front.url, emulators, backends, running)
    finally:
        await stop_all(running)
