"""The upload store's interface, shared by the file store (one balancer,
`files/store.py`) and the Redis store (several replicas, `files/redis_uploads.py`).

Every method that reads or changes the index is async: on Redis it is a
round trip, and a Redis that does not answer raises StoreUnavailable (the
app answers 503 `store_unavailable`), never an empty answer. Bodies are
spooled to a local file while they are hashed (`BlobWriter`), so a 100 MB
upload is never held in memory; `finish` hands the spooled file to the
store. Keys are canonical `FileKey`s (`files.locate`): the caller resolves
a name once, checks the caller's right to it, and reads or writes the store
at that same key.
"""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable
from pathlib import Path
from typing import Protocol

from balancer.config.settings import Settings
from balancer.files.paths import FileKey

# Takes a complete spooled file (its path, sha256 and size) into the store.
Adopt = Callable[[Path, str, int], Awaitable[None]]


class BlobWriter:
    """A blob being received: `write` chunks, then `finish` (or `abort`)."""

    def __init__(self, spool: Path, adopt: Adopt) -> None:
        self.path = spool / secrets.token_hex(12)
        self._adopt = adopt
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

    async def finish(self) -> str:
        """Hand the blob to the store (a duplicate is dropped); its sha256.
        If the store cannot take it, the spooled file is removed and the
        error raised."""
        self._file.close()
        sha = self._hash.hexdigest()
        try:
            await self._adopt(self.path, sha, self.size)
        finally:
            self.path.unlink(missing_ok=True)
        return sha

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class Uploads(Protocol):
    """Named, content-addressed upload blobs with retention."""

    def writer(self) -> BlobWriter: ...

    async def add_bytes(self, data: bytes) -> str:
        """A small blob made by the balancer itself (a masked image); its sha256."""
        ...

    async def lookup(self, key: FileKey) -> str | None:
        """The sha256 stored under this name, if its blob is still there."""
        ...

    async def lookup_many(self, keys: Collection[FileKey]) -> dict[FileKey, str]:
        """`lookup` of several names in one step; only the names stored."""
        ...

    async def assign(self, key: FileKey, sha: str, overwrite: bool) -> FileKey:
        """ComfyUI's naming: same bytes keep the name, different bytes get
        `name (1).ext`, `(2)`...; `overwrite` replaces. The final key."""
        ...

    async def touch(self, sha: str) -> None:
        """The blob was used now (retention counts from its last use)."""
        ...

    async def has_blob(self, sha: str) -> bool: ...

    async def blob_file(self, sha: str) -> Path | None:
        """A local file holding the blob's bytes (never written to again),
        None once the blob is gone."""
        ...

    async def input_images(self) -> list[str]:
        """Input files that are images, as LoadImage lists them (`sub/name`), sorted."""
        ...

    async def evict(self, protected: Iterable[str]) -> list[str]:
        """Drop blobs older than `max_age`, then the oldest until the store
        fits `max_bytes`; never a protected sha. The evicted shas."""
        ...


def image_inputs(keys: Iterable[FileKey]) -> list[str]:
    """The input images among `keys`, as LoadImage lists them, sorted."""
    names = []
    for key in keys:
        kind = mimetypes.guess_type(key.name)[0] or ""
        if key.type == "input" and kind.startswith("image/"):
            names.append(key.relative)
    return sorted(names)


def uploads_dir(settings: Settings) -> Path:
    """`uploads.dir`, `<data_dir>/uploads` when empty."""
    return Path(settings.uploads.dir or Path(settings.data_dir) / "uploads")
