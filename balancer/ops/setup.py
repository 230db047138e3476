"""The config watcher's life with the app: poll the file every probe
interval, reload at once on SIGHUP, stop with the app."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from balancer.config.reload import ConfigWatcher
from balancer.config.settings import Settings
from balancer.ops.membership import Membership
from balancer.ops.reconfigure import apply_settings
from balancer.state import Balancer
from balancer.tasks import stop


@contextlib.asynccontextmanager
async def watching_config(
    b: Balancer, members: Membership, path: str, applied: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Apply each valid new version of the file at `path` while the app
    runs, then call `applied`."""

    async def on_change(settings: Settings) -> None:
        await apply_settings(b, members, settings)
        await applied()

    watcher = ConfigWatcher(path, on_change, lambda: b.settings.probe.interval)
    task = asyncio.create_task(watcher.run())
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, watcher.trigger)
    try:
        yield
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        await stop(task)
        await watcher.close()
