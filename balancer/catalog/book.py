"""The catalogues of the pool: one owner (`Catalogues`) and one writer that
reads them from the backends (`CatalogueReader`).

A catalogue is read when a backend is first probed, after it was down or its
event channel reconnected (it may have restarted with other nodes or
models; a channel's first connection after a read made while it was down
is no such sign), every `catalog.refresh`, and when an operator asks
(`POST /balancer/backends/{name}/refresh`). A failed read keeps the last
catalogue: a backend that answered once is still judged by what it had; it
is tried again after RETRY seconds, doubling while it keeps failing.
A read after a probe runs in the background: the probe round goes on (at
start-up, 1,000 backends' first probes are not held up by 1,000 reads).
At most `READS_AT_ONCE` backends are read at a time: one read is a dozen
requests and the largest answer a backend gives (`/object_info`), and 1,000
backends read at once at start-up would starve their own probes, which then
time out. A read's requests go one after another, over one kept-alive
connection: made in parallel, each opened a connection of its own, and
opening connections was a third of the balancer's CPU at start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from balancer.backends.state import Backend, Clock, LoadSnapshot
from balancer.catalog.model import Catalogue, parse_object_info
from balancer.catalog.union import Union, build_union
from balancer.logs import get_logger
from balancer.tasks import cancel_all
from balancer.upstream import Upstream, UpstreamError

log = get_logger("balancer.catalog")

# Seconds before a failed catalogue read is tried again (doubling with each
# failure in a row, up to `catalog.refresh`).
RETRY = 5.0
READS_AT_ONCE = 8


class Catalogues:
    """Every backend's catalogue, and one definition per node class (from
    whichever backend reported it last) for the pool-wide `/object_info`.
    `version` changes whenever any of that changes, so derived answers (the
    union routes) are recomputed only then."""

    def __init__(self) -> None:
        self._by_backend: dict[str, Catalogue] = {}
        self.definitions: dict[str, Any] = {}
        self.version = 0
        self._union: Union | None = None

    def get(self, name: str) -> Catalogue | None:
        return self._by_backend.get(name)

    def record(self, name: str, catalogue: Catalogue, definitions: dict[str, Any]) -> bool:
        """Keep a backend's new catalogue; True if anything changed."""
        changed = self._by_backend.get(name) != catalogue
        self._by_backend[name] = catalogue
        for class_type, definition in definitions.items():
            if class_type not in self.definitions:  # the first one seen stays
                self.definitions[class_type] = definition
                changed = True
        if changed:
            self.version += 1
        return changed

    def union(self, names: Iterable[str]) -> Union | None:
        """The union of these backends' known catalogues (None if none is
        known), recomputed only when a catalogue or the set changed."""
        known = {n: self._by_backend[n] for n in sorted(names) if n in self._by_backend}
        if not known:
            return None
        key = hashlib.sha256(f"{self.version}|{','.join(known)}".encode()).hexdigest()[:16]
        if self._union is None or self._union.key != key:
            self._union = build_union(key, known.values(), self.definitions)
        return self._union

    def main_models(self) -> frozenset[str]:
        """Checkpoints and UNets some backend offers."""
        return frozenset(
            name
            for c in self._by_backend.values()
            for folder in ("checkpoints", "diffusion_models", "unet")
            for name in c.models.get(folder, ())
        )

    def forget(self, name: str) -> None:
        if self._by_backend.pop(name, None) is not None:
            self.version += 1


@dataclass
class _Read:
    at: float
    channel_id: str | None


class CatalogueReader:
    def __init__(
        self,
        catalogues: Catalogues,
        upstream: Upstream,
        refresh: float,
        clock: Clock,
        restarted: Callable[[str], None],
    ) -> None:
        # Told a backend's name when it may have restarted (back after being
        # down, or its channel reconnected): what it held in VRAM is gone.
        self.restarted = restarted
        self.catalogues = catalogues
        self.upstream = upstream
        self.refresh = refresh
        self.clock = clock
        self._last: dict[str, _Read] = {}
        self._stale: set[str] = set()
        self._failing: dict[str, int] = {}  # failed reads in a row
        self._reading: dict[str, asyncio.Task[bool]] = {}
        self._turns = asyncio.Semaphore(READS_AT_ONCE)

    def backend_down(self, name: str) -> None:
        """A backend that went down is read again when it is back."""
        self._stale.add(name)

    def due(self, backend: Backend) -> bool:
        last = self._last.get(backend.name)
        if last is None or backend.name in self._stale:
            return True
        if last.channel_id is not None and last.channel_id != backend.channel_id:
            return True  # its channel reconnected (a read without one came after the drop)
        return self.clock() - last.at >= self.retry_after(backend.name)

    def retry_after(self, name: str) -> float:
        """`catalog.refresh`, or sooner after failed reads: a backend never
        read is not eligible, so waiting the whole refresh to try again
        would keep a GPU idle for a passing error (RETRY, doubling)."""
        failures = self._failing.get(name, 0)
        return min(self.refresh, RETRY * 2 ** (failures - 1)) if failures else self.refresh

    async def after_probe(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        """Prober listener: start reading the catalogue when it is due; the
        read runs in the background (`settled` waits for it)."""
        if backend.name not in self._reading and self.due(backend):
            self._start(backend)

    async def read(self, backend: Backend) -> bool:
        """This backend's catalogue read now; False if it could not be read."""
        return await asyncio.shield(self._start(backend))

    async def settled(self) -> None:
        """Once every read under way has ended (whoever probed and wants the
        catalogues known: the demo before its curl line, tests)."""
        while self._reading:
            await asyncio.wait(list(self._reading.values()))

    async def close(self) -> None:
        """Shutdown: reads under way are dropped."""
        await cancel_all(self._reading.values())

    def _start(self, backend: Backend) -> asyncio.Task[bool]:
        name = backend.name
        reading = asyncio.create_task(self._in_turn(backend))
        self._reading[name] = reading

        def ended(task: asyncio.Task[bool]) -> None:
            if self._reading.get(name) is task:
                del self._reading[name]
            if not task.cancelled() and task.exception() is not None:
                log.error("catalogue_read_crashed", backend=name, error=repr(task.exception()))

        reading.add_done_callback(ended)
        return reading

    async def _in_turn(self, backend: Backend) -> bool:
        async with self._turns:
            return await self._read(backend)

    async def _read(self, backend: Backend) -> bool:
        name, channel_id = backend.name, backend.channel_id
        last = self._last.get(name)
        if last is not None and (name in self._stale or last.channel_id != channel_id):
            self.restarted(name)
        self._stale.discard(name)
        self._last[name] = _Read(self.clock(), channel_id)
        try:  # one request after another: one kept-alive connection, not a dozen new ones
            data = await self.upstream.get_json(backend.url + "/object_info")
            models = await self._models(backend.url)
            embeddings = await self._list(backend.url + "/embeddings")
            classes, combos = parse_object_info(data)
        except (UpstreamError, ValueError) as exc:
            if name not in self._failing:
                log.warning("catalogue_failed", backend=name, error=str(exc))
            self._failing[name] = self._failing.get(name, 0) + 1
            return False
        self._failing.pop(name, None)
        catalogue = Catalogue(classes, combos, models, tuple(embeddings))
        if self.catalogues.record(name, catalogue, data):
            log.info("catalogue", backend=name, classes=len(classes), combos=len(combos))
        return True

    async def _models(self, url: str) -> dict[str, tuple[str, ...]]:
        folders = [f for f in await self._list(url + "/models") if "/" not in f]
        return {folder: tuple(await self._list(f"{url}/models/{folder}")) for folder in folders}

    async def _list(self, url: str) -> list[str]:
        """A list of names; an older ComfyUI without the route has none."""
        try:
            data = await self.upstream.get_json(url)
        except UpstreamError:
            return []
        return (
            [str(item) for item in data if isinstance(item, str)] if isinstance(data, list) else []
        )
