"""The upload store in Redis (`store.kind: redis`): every replica sees every
upload, so a client may upload through one replica and post the prompt that
uses it through another.

Blobs are kept in Redis in chunks of 512 KiB (one hash per blob), written
under a temporary key that expires if its writer dies and renamed into
place by one script once complete. The index (names, sizes, last use) and
retention are scripts too (`redis_upload_scripts.py`), so naming, counting
and eviction under `uploads.max_bytes` are atomic across the pool. Each
replica keeps a local copy of the blobs it reads (`<uploads.dir>/cache`),
content-addressed and so never stale, to serve `/view` with ranges and to
push files to backends; copies of blobs evicted anywhere are removed at its
next eviction pass. A Redis that does not answer raises StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import secrets
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from balancer.config.storage_settings import UploadSettings
from balancer.files import redis_upload_scripts as lua
from balancer.files.paths import FileKey
from balancer.files.uploads import BlobWriter, image_inputs
from balancer.logs import get_logger
from balancer.store.model import StoreUnavailable
from balancer.store.reach import Deadline, reachable

log = get_logger("balancer.files")

CHUNK = 512 * 1024
# A blob being written whose writer went silent this long is dropped.
PART_TTL_MS = 3600 * 1000
# How long a replica's hold on the blobs its prompts need outlasts its last
# eviction pass (each upload and each probe renews it): a dead replica's
# holds end by themselves.
HOLD = 60.0
# How often a replica removes local copies of blobs evicted elsewhere.
PRUNE_EVERY = 60.0


def field(key: FileKey) -> str:
    """A canonical key as the index names it: `type/sub/dir/name`."""
    return f"{key.type}/{key.relative}"


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def key_of(name: bytes | str) -> FileKey:
    kind, _, rest = text(name).partition("/")
    subfolder, _, base = rest.rpartition("/")
    return FileKey(kind, subfolder, base)


class RedisUploads:
    """`Uploads` shared by every replica through Redis."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        root: Path,
        settings: UploadSettings,
        timeout: float,
        now: Callable[[], float] = time.time,
        deadline: Deadline = asyncio.timeout,
    ) -> None:
        self.client = client
        self.prefix = prefix + "uploads:"
        self.cache = root / "cache"
        self.spool = root / "tmp"
        self.settings = settings
        self.timeout = timeout
        self.now = now
        self.deadline = deadline
        self._pruned = -PRUNE_EVERY
        self.holder = secrets.token_hex(8)  # names this store's hold on blobs
        for folder in (self.cache, self.spool):
            folder.mkdir(parents=True, exist_ok=True)
        self._adopt_script = client.register_script(lua.ADOPT)
        self._assign = client.register_script(lua.ASSIGN)
        self._evict = client.register_script(lua.EVICT)

    def _reach(self) -> contextlib.AbstractAsyncContextManager[None]:
        return reachable(self.timeout, self.deadline)

    async def _run(self, script: Any, keys: list[str], *args: str | int | float) -> Any:
        async with self._reach():
            return await script(keys=keys, args=[self.prefix, *args])

    # ---- writing
    def writer(self) -> BlobWriter:
        return BlobWriter(self.spool, self._adopt)

    async def add_bytes(self, data: bytes) -> str:
        writer = self.writer()
        writer.write(data)
        return await writer.finish()

    async def _adopt(self, spooled: Path, sha: str, size: int) -> None:
        """Send the spooled blob to Redis (unless it is there already), then
        keep the spooled file as this replica's local copy."""
        if not await self.has_blob(sha):
            part = f"{self.prefix}part:{secrets.token_hex(12)}"
            await self._send(spooled, part)
            stored = await self._run(self._adopt_script, [part], sha, size, self.now())
            if stored == -1:
                raise StoreUnavailable("redis: an upload expired before it was complete")
        else:
            await self.touch(sha)
        os.replace(spooled, self.cache / sha)

    async def _send(self, spooled: Path, part: str) -> None:
        with open(spooled, "rb") as body:
            number = 0
            while chunk := body.read(CHUNK):
                async with self._reach():
                    pipe = self.client.pipeline(transaction=False)
                    pipe.hset(part, str(number), chunk)
                    pipe.pexpire(part, PART_TTL_MS)
                    await pipe.execute()
                number += 1

    # ---- the index
    async def has_blob(self, sha: str) -> bool:
        async with self._reach():
            return bool(await self.client.hexists(self.prefix + "sizes", sha))

    async def lookup(self, key: FileKey) -> str | None:
        async with self._reach():
            sha = await self.client.hget(self.prefix + "names", field(key))
        return text(sha) if sha is not None else None

    async def lookup_many(self, keys: Collection[FileKey]) -> dict[FileKey, str]:
        if not keys:
            return {}
        wanted = list(keys)
        async with self._reach():
            shas = await self.client.hmget(self.prefix + "names", [field(k) for k in wanted])
        return {key: text(sha) for key, sha in zip(wanted, shas, strict=True) if sha}

    async def assign(self, key: FileKey, sha: str, overwrite: bool) -> FileKey:
        stem, ext = posixpath.splitext(key.name)
        args = (key.type, key.subfolder, stem, ext, key.name, sha, "1" if overwrite else "0")
        final = await self._run(self._assign, [], *args, self.now())
        if final is None:  # evicted by another replica between store and naming
            raise StoreUnavailable("the upload was evicted before it was named: send it again")
        return FileKey(key.type, key.subfolder, text(final))

    async def touch(self, sha: str) -> None:
        async with self._reach():
            await self.client.zadd(self.prefix + "touched", {sha: self.now()}, xx=True)

    async def input_images(self) -> list[str]:
        async with self._reach():
            names = await self.client.hkeys(self.prefix + "names")
        return image_inputs(key_of(name) for name in names)

    # ---- reading
    async def blob_file(self, sha: str) -> Path | None:
        local = self.cache / sha
        if not await self.has_blob(sha):
            local.unlink(missing_ok=True)
            return None
        if local.is_file() or await self._fetch(sha, local):
            return local
        return None

    async def _fetch(self, sha: str, local: Path) -> bool:
        """Copy the blob from Redis into `local`; False if it went meanwhile."""
        temp = self.spool / secrets.token_hex(12)
        digest = hashlib.sha256()
        try:
            with open(temp, "wb") as out:
                async for chunk in self._chunks(sha):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha:
                log.warning("upload_blob_incomplete", sha256=sha[:16])
                return False
            os.replace(temp, local)
            return True
        finally:
            temp.unlink(missing_ok=True)

    async def _chunks(self, sha: str) -> AsyncIterator[bytes]:
        blob, number = f"{self.prefix}blob:{sha}", 0
        while True:
            async with self._reach():
                chunk = await self.client.hget(blob, str(number))
            if chunk is None:
                return
            yield chunk if isinstance(chunk, bytes) else chunk.encode()
            number += 1

    # ---- retention
    async def evict(self, protected: Iterable[str]) -> list[str]:
        now = self.now()
        cutoff = now - self.settings.max_age
        limits = (now, cutoff, self.settings.max_bytes, self.holder, now + HOLD)
        answer = await self._run(self._evict, [], *limits, *sorted(set(protected)))
        evicted = [text(sha) for sha in answer]
        for sha in evicted:
            (self.cache / sha).unlink(missing_ok=True)
            log.info("upload_evicted", sha256=sha[:16])
        if now - self._pruned >= PRUNE_EVERY:
            self._pruned = now
            await self._prune()
        return evicted

    async def _prune(self) -> None:
        """Remove local copies of blobs that are gone from Redis."""
        local = [path.name for path in self.cache.iterdir()]
        if not local:
            return
        async with self._reach():
            sizes = await self.client.hmget(self.prefix + "sizes", local)
        for sha, size in zip(local, sizes, strict=True):
            if size is None:
                (self.cache / sha).unlink(missing_ok=True)
