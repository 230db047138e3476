"""The completing step of a job: its outputs copied to the bucket before its
end is announced (or, with `outputs.wait: false`, after).

The sink owns the storage fields of a kept history entry's file items:
`key` and `stored` (true, or false after every retry failed), plus a `url`
signed when the job ends (readers sign a fresh one, see `links.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from balancer.config.delivery_settings import OutputSettings
from balancer.logs import get_logger
from balancer.outputs.bucket import Bucket
from balancer.outputs.copier import Copied, Copier
from balancer.outputs.index import StoredFiles
from balancer.outputs.items import (
    OutputFile,
    files_of,
    job_prefix,
    object_key,
    stored_keys,
    with_items,
)
from balancer.outputs.links import Links, with_url
from balancer.outputs.metrics import OutputMetrics
from balancer.outputs.state import SinkState
from balancer.store import Store
from balancer.tasks import cancel_all, settle

log = get_logger("balancer.outputs")
PARALLEL = 4  # files copied at once, across all jobs


class OutputSink:
    def __init__(
        self,
        settings: OutputSettings,
        bucket: Bucket,
        copier: Copier,
        links: Links,
        store: Store,
        metrics: OutputMetrics,
        state: SinkState,
        files: StoredFiles,
    ) -> None:
        self.settings = settings
        self.bucket = bucket
        self.copier = copier
        self.links = links
        self.store = store
        self.metrics = metrics
        self.state = state
        self.files = files  # built from the kept history at start
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._later: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(PARALLEL)

    async def complete(self, prompt_id: str, backend_url: str, entry: Any) -> Any:
        """The entry to keep for this finished job, its outputs copied first
        (a second call for the same job while copying waits for the first)."""
        if not files_of(entry, self.settings.include_temp):
            return entry
        if not self.settings.wait:
            self._copy_later(prompt_id, backend_url, entry)
            return entry
        task = self._running.get(prompt_id)
        if task is None:
            task = asyncio.ensure_future(self._store(prompt_id, backend_url, entry))
            self._running[prompt_id] = task
            task.add_done_callback(lambda _: self._running.pop(prompt_id, None))
        return await asyncio.shield(task)

    def _copy_later(self, prompt_id: str, backend_url: str, entry: Any) -> None:
        async def run() -> None:
            stored = await self._store(prompt_id, backend_url, entry)
            if await self.store.get_history(prompt_id) is not None:
                await self.store.put_history(prompt_id, stored)

        task = asyncio.ensure_future(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _store(self, prompt_id: str, backend_url: str, entry: Any) -> Any:
        job = await self._job(prompt_id)
        files = files_of(entry, self.settings.include_temp)
        self.state.backlog += len(files)
        results = await asyncio.gather(*(self._one(backend_url, f, job) for f in files))
        done = {(f.node_id, f.kind, f.index): r for f, r in zip(files, results, strict=True)}
        urls = {r.key: await self.links.url(r.key) for r in results if r.stored}

        def mark(file: OutputFile, item: dict[str, Any]) -> dict[str, Any]:
            result = done[(file.node_id, file.kind, file.index)]
            if not result.stored:
                return {**item, "stored": False}
            return with_url({**item, "stored": True, "key": result.key}, urls[result.key])

        kept = with_items(entry, mark, self.settings.include_temp)
        self.files.add(kept)
        return kept

    async def _one(self, backend_url: str, file: OutputFile, job: str) -> Copied:
        try:
            async with self._slots:
                result = await self.copier.copy(backend_url, file, object_key(job, file))
        finally:
            self.state.backlog -= 1
        self.metrics.copied(result)
        if result.stored:
            log.info("output_stored", key=result.key, bytes=result.size, skipped=result.skipped)
        else:
            log.warning("output_not_stored", key=result.key, error=result.error)
        return result

    async def _job(self, prompt_id: str) -> str:
        pin = await self.store.get_pin(prompt_id)
        return job_prefix(self.settings.prefix, pin.tenant if pin else None, prompt_id)

    async def delete(self, prompt_id: str) -> int:
        """Delete a finished job's objects; its kept entry says `stored: false,
        deleted: true` from then on. Returns how many objects went."""
        entry = await self.store.get_history(prompt_id)
        if entry is None or not any(True for _ in stored_keys(entry)):
            return 0
        count = await self.bucket.delete_prefix(await self._job(prompt_id))
        self.files.remove(entry)

        def gone(file: OutputFile, item: dict[str, Any]) -> dict[str, Any]:
            if not item.get("stored"):
                return item
            kept = {k: v for k, v in item.items() if k not in ("key", "url")}
            return {**kept, "stored": False, "deleted": True}

        await self.store.put_history(prompt_id, with_items(entry, gone, include_temp=True))
        log.info("outputs_deleted", prompt_id=prompt_id, objects=count)
        return count

    async def settled(self) -> None:
        """Wait until every copy started after a job's end (`wait: false`) is done."""
        await settle(self._later)

    async def close(self) -> None:
        """Shutdown: copies still running are abandoned; their jobs were not
        ended, so the next start copies them again."""
        await cancel_all([*self._running.values(), *self._later])
