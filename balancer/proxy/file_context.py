"""The upload store, placement and user data, built once per app next to
the Balancer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from balancer.backends.registry import Registry
from balancer.backends.state import Clock
from balancer.config.settings import Settings
from balancer.files.index import JsonIndex
from balancer.files.placement import Placement
from balancer.files.store import FileUploads
from balancer.files.uploads import Uploads, uploads_dir
from balancer.jobs.lifecycle import Jobs
from balancer.store import Store
from balancer.userdata import UserFiles
from balancer.userdata.model import UserDataOf


@dataclass
class Files:
    store: Uploads
    placement: Placement
    session: aiohttp.ClientSession
    max_upload: int
    user_data: UserDataOf  # a user's (`default`, or a tenant's) settings and files


FILES: web.AppKey[Files] = web.AppKey("files", Files)


def local_uploads(settings: Settings, wall_clock: Clock) -> FileUploads:
    """The upload store of a balancer that runs alone: files in `uploads.dir`."""
    root = uploads_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    return FileUploads(root, JsonIndex(root / "index.json"), settings.uploads, wall_clock)


def local_user_data(settings: Settings) -> UserDataOf:
    """User data of a balancer that runs alone: `<data_dir>/user/<user>/`."""
    root = Path(settings.data_dir) / "user"
    return lambda user: UserFiles(root, user)


def build_files(
    settings: Settings,
    uploads: Uploads,
    user_data: UserDataOf,
    store: Store,
    jobs: Jobs,
    registry: Registry,
    session: aiohttp.ClientSession,
) -> Files:
    """Placement (the dispatcher's BeforeDispatch step) over `uploads`: the
    replicas' shared store in Redis, or `local_uploads`."""

    async def is_unfinished(prompt_id: str) -> bool:
        job = await store.get_job(prompt_id)
        return job is not None and not job.finished

    def waiting() -> list[dict[str, Any]]:
        return [job.request for job in jobs.queue]

    limit = settings.limits.max_upload
    placement = Placement(uploads, registry, session, is_unfinished, limit, waiting)
    return Files(uploads, placement, session, limit, user_data)


def files_of(request: web.Request) -> Files:
    return request.app[FILES]
