"""The file upload store (one balancer): content-addressed blobs on disk
plus a JSON index (`index.py`).

Blobs live at `<dir>/blobs/<sha[:2]>/<sha>`; a body is spooled into
`<dir>/tmp/` while it is hashed and renamed into place when complete, so a
half-written blob is never seen. Names follow ComfyUI's rules (`assign`);
retention (`evict`) trims old blobs but never one a running or queued
prompt needs. Several replicas share uploads through `RedisUploads` instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from balancer.config.storage_settings import UploadSettings
from balancer.files.index import BlobInfo, UploadIndex
from balancer.files.paths import FileKey, numbered
from balancer.files.uploads import BlobWriter, image_inputs
from balancer.logs import get_logger

log = get_logger("balancer.files")


class FileUploads:
    """`Uploads` in a local directory."""

    def __init__(
        self,
        root: Path,
        index: UploadIndex,
        settings: UploadSettings,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.index = index
        self.settings = settings
        self.now = now
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def blob_path(self, sha: str) -> Path:
        return self.root / "blobs" / sha[:2] / sha

    def _has(self, sha: str) -> bool:
        return self.index.blob(sha) is not None and self.blob_path(sha).is_file()

    async def has_blob(self, sha: str) -> bool:
        return self._has(sha)

    async def blob_file(self, sha: str) -> Path | None:
        return self.blob_path(sha) if self._has(sha) else None

    def writer(self) -> BlobWriter:
        return BlobWriter(self.root / "tmp", self._adopt)

    async def add_bytes(self, data: bytes) -> str:
        writer = self.writer()
        writer.write(data)
        return await writer.finish()

    async def _adopt(self, temp: Path, sha: str, size: int) -> None:
        target = self.blob_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            os.replace(temp, target)
        self.index.put_blob(sha, BlobInfo(size, self.now()))

    async def touch(self, sha: str) -> None:
        info = self.index.blob(sha)
        if info is not None:
            self.index.put_blob(sha, BlobInfo(info.size, self.now()))

    def _lookup(self, key: FileKey) -> str | None:
        sha = self.index.get(key)
        return sha if sha is not None and self._has(sha) else None

    async def lookup(self, key: FileKey) -> str | None:
        return self._lookup(key)

    async def lookup_many(self, keys: Collection[FileKey]) -> dict[FileKey, str]:
        return {key: sha for key in keys if (sha := self._lookup(key)) is not None}

    async def assign(self, key: FileKey, sha: str, overwrite: bool) -> FileKey:
        final = key
        counter = 1
        while not overwrite:
            existing = self._lookup(final)
            if existing is None or existing == sha:
                break
            final = FileKey(key.type, key.subfolder, numbered(key.name, counter))
            counter += 1
        if self.index.get(final) != sha:
            self.index.put(final, sha)
        await self.touch(sha)
        return final

    async def input_images(self) -> list[str]:
        return image_inputs(key for key in self.index.names() if self._lookup(key))

    async def evict(self, protected: Iterable[str]) -> list[str]:
        keep = set(protected)
        blobs = self.index.blobs()
        oldest_first = sorted(blobs, key=lambda sha: blobs[sha].touched)
        total = sum(b.size for b in blobs.values())
        cutoff = self.now() - self.settings.max_age
        evicted = []
        for sha in oldest_first:
            if sha in keep:
                continue
            if blobs[sha].touched >= cutoff and total <= self.settings.max_bytes:
                break
            self._remove(sha)
            total -= blobs[sha].size
            evicted.append(sha)
        return evicted

    def _remove(self, sha: str) -> None:
        names = self.index.remove_blob(sha)
        self.blob_path(sha).unlink(missing_ok=True)
        log.info("upload_evicted", sha256=sha[:16], names=len(names))
