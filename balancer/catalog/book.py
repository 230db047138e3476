"""The catalogues of the pool: one owner (`Catalogues`) and one writer that
reads them from the backends (`CatalogueReader`).

A catalogue is read when a backend is first probed, after it was down or its
event channel reconnected (it may have restarted with other nodes or
models), every `catalog.refresh`, and when an operator asks
(`POST /balancer/backends/{name}/refresh`). A failed read keeps the last
catalogue: a backend that answered once is still judged by what it had; it
is tried again after RETRY seconds, doubling while it keeps failing.
At most `READS_AT_ONCE` backends are read at a time: one read is a dozen
requests and the largest answer a backend gives (`/object_info`), and 1,000
backends read at once at start-up would starve their own probes, which then
time out.
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
        self._reading: dict[str, asyncio.Future[bool]] = {}
        self._turns = asyncio.Semaphore(READS_AT_ONCE)

    def backend_down(self, name: str) -> None:
        """A backend that went down is read again when it is back."""
        self._stale.add(name)

    def due(self, backend: Backend) -> bool:
        last = self._last.get(backend.name)
        if last is None or backend.name in self._stale or last.channel_id != backend.channel_id:
            return True
        return self.clock() - last.at >= self.retry_after(backend.name)

    def retry_after(self, name: str) -> float:
        """`catalog.refresh`, or sooner after failed reads: a backend never
        read is not eligible, so waiting the whole refresh to try again
        would keep a GPU idle for a passing error (RETRY, doubling)."""
        failures = self._failing.get(name, 0)
        return min(self.refresh, RETRY * 2 ** (failures - 1)) if failures else self.refresh

    async def after_probe(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        """Prober listener: read the catalogue when it is due. A probe that
        comes while a read is under way waits for it, so whoever probed (the
        demo before printing its curl line) sees the catalogue."""
        reading = self._reading.get(backend.name)
        if reading is not None:
            await asyncio.shield(reading)
        elif self.due(backend):
            await self.read(backend)

    async def read(self, backend: Backend) -> bool:
        """Read one backend's catalogue now; False if it could not be read."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._reading[backend.name] = done
        ok = False
        try:
            async with self._turns:
                ok = await self._read(backend)
        finally:
            del self._reading[backend.name]
            done.set_result(ok)
        return ok

    async def _read(self, backend: Backend) -> bool:
        name, channel_id = backend.name, backend.channel_id
        last = self._last.get(name)
        if last is not None and (name in self._stale or last.channel_id != channel_id):
            self.restarted(name)
        self._stale.discard(name)
        self._last[name] = _Read(self.clock(), channel_id)
        try:
            data, models, embeddings = await asyncio.gather(
                self.upstream.get_json(backend.url + "/object_info"),
                self._models(backend.url),
                self._list(backend.url + "/embeddings"),
            )
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
        lists = await asyncio.gather(*(self._list(f"{url}/models/{f}") for f in folders))
        return {folder: tuple(names) for folder, names in zip(folders, lists, strict=True)}

    async def _list(self, url: str) -> list[str]:
        """A list of names; an older ComfyUI without the route has none."""
        try:
            data = await self.upstream.get_json(url)
        except UpstreamError:
            return []
        return (
            [str(item) for item in data if isinstance(item, str)] if isinstance(data, list) else []
        )
