"""Live reload: notice that the config file changed, load it, or keep the old one.

The file is polled for a new (mtime, size) every probe interval; no
dependency, and it works on every filesystem, including the bind mounts and
ConfigMaps where inotify events go missing. SIGHUP reloads at once. A file
that does not validate is refused: every error is logged and the running
config stays. Applying a valid file is the caller's business (`on_change`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from balancer.config.backend_settings import BackendSettings
from balancer.config.errors import ConfigError
from balancer.config.load import load_settings
from balancer.config.settings import Settings
from balancer.logs import get_logger

log = get_logger("balancer.config")

Stamp = tuple[int, int] | None


def file_stamp(path: Path) -> Stamp:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@dataclass(frozen=True)
class BackendDiff:
    added: tuple[BackendSettings, ...]
    removed: tuple[str, ...]
    changed: tuple[BackendSettings, ...]


def diff_backends(
    current: Iterable[BackendSettings], new: Iterable[BackendSettings]
) -> BackendDiff:
    """What a reload does to the backends: by name, in the new file's order."""
    old = {s.name: s for s in current}
    fresh = {s.name: s for s in new}
    return BackendDiff(
        added=tuple(s for name, s in fresh.items() if name not in old),
        removed=tuple(name for name in old if name not in fresh),
        changed=tuple(s for name, s in fresh.items() if name in old and old[name] != s),
    )


def try_load(path: Path) -> Settings | None:
    """The new settings, or None with every error logged."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        for error in exc.errors:
            log.error("config_invalid", path=str(path), error=error)
        log.warning("config_kept", path=str(path), errors=len(exc.errors))
        return None


class ConfigWatcher:
    def __init__(
        self,
        path: str | Path,
        on_change: Callable[[Settings], Awaitable[None]],
        interval: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.interval = interval
        self.sleep = sleep
        self.stamp = file_stamp(self.path)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()

    async def reload(self, why: str) -> bool:
        """Load and apply the file; False if it was refused."""
        async with self._lock:
            log.info("config_reload", path=str(self.path), why=why)
            settings = try_load(self.path)
            if settings is None:
                return False
            await self.on_change(settings)
            return True

    async def poll(self) -> bool:
        """Reload if the file's (mtime, size) changed since the last look."""
        stamp = file_stamp(self.path)
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        return await self.reload("file changed")

    async def run(self) -> None:
        while True:
            await self.sleep(self.interval())
            await self.poll()

    def trigger(self) -> None:
        """SIGHUP: reload now (from a signal handler, so as a task)."""
        task = asyncio.get_running_loop().create_task(self.reload("SIGHUP"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
