"""The balancer's upload store: content-addressed blobs on disk plus an index.

Blobs live at `<dir>/blobs/<sha[:2]>/<sha>`; a body is streamed into
`<dir>/tmp/` while it is hashed and renamed into place when complete, so a
100 MB upload is never held in memory and a half-written blob is never seen.
Names follow ComfyUI's rules (`assign`); retention (`evict`) trims old blobs
but never one a running or queued prompt needs.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from balancer.config.model import UploadSettings
from balancer.files.index import BlobInfo, UploadIndex
from balancer.files.paths import FileKey, numbered
from balancer.logs import get_logger

log = get_logger("balancer.files")


class BlobWriter:
    """A blob being received: write chunks, then `finish` (or `abort`)."""

    def __init__(self, store: UploadStore) -> None:
        self.store = store
        self.path = store.root / "tmp" / secrets.token_hex(12)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in finish/abort
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def flush(self) -> Path:
        """Make what was written readable at `path` (before finish or abort)."""
        self._file.flush()
        return self.path

    def finish(self) -> str:
        """Move the blob into place (a duplicate is dropped); return its sha256."""
        self._file.close()
        sha = self._hash.hexdigest()
        self.store.adopt(self.path, sha, self.size)
        return sha

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class UploadStore:
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

    def has_blob(self, sha: str) -> bool:
        return self.index.blob(sha) is not None and self.blob_path(sha).is_file()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def add_bytes(self, data: bytes) -> str:
        """A small blob made by the balancer itself (a masked image)."""
        writer = self.writer()
        writer.write(data)
        return writer.finish()

    def adopt(self, temp: Path, sha: str, size: int) -> None:
        target = self.blob_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file():
            temp.unlink(missing_ok=True)
        else:
            os.replace(temp, target)
        self.index.put_blob(sha, BlobInfo(size, self.now()))

    def touch(self, sha: str) -> None:
        info = self.index.blob(sha)
        if info is not None:
            self.index.put_blob(sha, BlobInfo(info.size, self.now()))

    def lookup(self, key: FileKey) -> str | None:
        """The sha256 stored under this name, if its blob is still there."""
        sha = self.index.get(key)
        return sha if sha is not None and self.has_blob(sha) else None

    def assign(self, key: FileKey, sha: str, overwrite: bool) -> FileKey:
        """ComfyUI's naming: same bytes keep the name, different bytes get
        `name (1).ext`, `(2)`...; `overwrite` replaces. Returns the final key."""
        final = key
        counter = 1
        while not overwrite:
            existing = self.lookup(final)
            if existing is None or existing == sha:
                break
            final = FileKey(key.type, key.subfolder, numbered(key.name, counter))
            counter += 1
        if self.index.get(final) != sha:
            self.index.put(final, sha)
        self.touch(sha)
        return final

    def input_images(self) -> list[str]:
        """Input files that are images, as LoadImage lists them (`sub/name`), sorted."""
        names = []
        for key in self.index.names():
            kind = mimetypes.guess_type(key.name)[0] or ""
            if key.type == "input" and kind.startswith("image/") and self.lookup(key):
                names.append(key.relative)
        return sorted(names)

    def evict(self, protected: Iterable[str]) -> list[str]:
        """Drop blobs older than `max_age`, then the oldest until the store fits
        `max_bytes`; never a protected sha. Returns the evicted shas."""
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
