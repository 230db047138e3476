"""The upload store and placement, built once per app next to the Balancer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from balancer.config.model import Settings
from balancer.files.index import JsonIndex
from balancer.files.placement import Placement
from balancer.files.store import UploadStore
from balancer.proxy.context import Balancer


@dataclass
class Files:
    store: UploadStore
    placement: Placement
    session: aiohttp.ClientSession
    max_upload: int


FILES: web.AppKey[Files] = web.AppKey("files", Files)


def uploads_dir(settings: Settings) -> Path:
    return Path(settings.uploads.dir or Path(settings.data_dir) / "uploads")


def attach_files(settings: Settings, b: Balancer, session: aiohttp.ClientSession) -> Files:
    """Build the store and make placement the Submitter's BeforeDispatch hook."""
    root = uploads_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    store = UploadStore(root, JsonIndex(root / "index.json"), settings.uploads)

    def is_unfinished(prompt_id: str) -> bool:
        if prompt_id in b.tracker.jobs:
            return True
        pin = b.store.get_pin(prompt_id)
        return pin is not None and not pin.answer  # still being dispatched

    limit = settings.limits.max_upload

    def waiting() -> list[dict[str, Any]]:
        return [job.request for job in b.submitter.binder.queue]

    placement = Placement(store, b.registry, session, is_unfinished, limit, waiting)
    b.submitter.dispatcher.before_dispatch = placement
    b.prober.listeners.append(placement.on_probe)
    return Files(store, placement, session, limit)


def files_of(request: web.Request) -> Files:
    return request.app[FILES]
