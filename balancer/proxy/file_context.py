"""The upload store and placement, built once per app next to the Balancer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from balancer.backends.registry import Registry
from balancer.config.model import Settings
from balancer.files.index import JsonIndex
from balancer.files.placement import Placement
from balancer.files.store import UploadStore
from balancer.jobs.lifecycle import Jobs
from balancer.store import Store


@dataclass
class Files:
    store: UploadStore
    placement: Placement
    session: aiohttp.ClientSession
    max_upload: int


FILES: web.AppKey[Files] = web.AppKey("files", Files)


def uploads_dir(settings: Settings) -> Path:
    return Path(settings.uploads.dir or Path(settings.data_dir) / "uploads")


def build_files(
    settings: Settings, store: Store, jobs: Jobs, registry: Registry, session: aiohttp.ClientSession
) -> Files:
    """The upload store and placement (the dispatcher's BeforeDispatch step)."""
    root = uploads_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    uploads = UploadStore(root, JsonIndex(root / "index.json"), settings.uploads)

    async def is_unfinished(prompt_id: str) -> bool:
        job = await store.get_job(prompt_id)
        return job is not None and not job.finished

    def waiting() -> list[dict[str, Any]]:
        return [job.request for job in jobs.queue]

    limit = settings.limits.max_upload
    placement = Placement(uploads, registry, session, is_unfinished, limit, waiting)
    return Files(uploads, placement, session, limit)


def files_of(request: web.Request) -> Files:
    return request.app[FILES]
