"""One output file from its backend's /view into the bucket: streamed, retried
with backoff, idempotent (the same key; skipped when already there with the
same size)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from balancer.outputs.bucket import Bucket, BucketError
from balancer.outputs.items import OutputFile
from balancer.outputs.state import CopyError, SinkState

CHUNK = 256 * 1024
MAX_WAIT = 60.0  # seconds between two tries, at most
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Copied:
    key: str
    size: int  # bytes in the bucket (0 when not stored)
    seconds: float
    skipped: bool = False  # already there with the same size
    parts: int = 0  # 1: one PUT; more: a multipart upload
    error: str | None = None  # why it was given up, after every retry
    attempts: tuple[CopyError, ...] = ()  # every failed try, the last one last

    @property
    def stored(self) -> bool:
        return self.error is None


def backoff(first: float, attempts: int) -> tuple[float, ...]:
    """The waits between `attempts` tries: first, 2x first, 4x first ...,
    at most MAX_WAIT each."""
    return tuple(min(MAX_WAIT, first * 2 ** min(n, 32)) for n in range(attempts - 1))


class Copier:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        bucket: Bucket,
        delays: Sequence[float],
        state: SinkState,
        sleep: Sleep = asyncio.sleep,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.http = http
        self.bucket = bucket
        self.delays = tuple(delays)
        self.state = state
        self.sleep = sleep
        self.timer = timer

    async def copy(self, backend_url: str, file: OutputFile, key: str) -> Copied:
        start = self.timer()
        failed: list[CopyError] = []
        for wait in (*self.delays, None):
            try:
                size, parts = await self._once(backend_url, file, key)
                self.state.reached()
                seconds = self.timer() - start
                return Copied(key, size, seconds, parts == 0, parts, attempts=tuple(failed))
            except CopyError as exc:
                failed.append(exc)
                self.state.attempt_failed(exc)
            if wait is not None:
                await self.sleep(wait)
        return Copied(key, 0, self.timer() - start, error=str(failed[-1]), attempts=tuple(failed))

    async def _once(self, backend_url: str, file: OutputFile, key: str) -> tuple[int, int]:
        """(bytes, parts uploaded); no parts when the object was already there."""
        params = {"filename": file.filename, "subfolder": file.subfolder, "type": file.type}
        try:
            async with self.http.get(f"{backend_url}/view", params=params) as resp:
                if resp.status != 200:
                    raise CopyError("backend", f"/view answered {resp.status}")
                expected = resp.content_length
                if expected is not None and await self.bucket.size(key) == expected:
                    return expected, 0
                chunks = resp.content.iter_chunked(CHUNK)
                size, parts = await self.bucket.put(key, chunks, resp.content_type)
        except BucketError as exc:
            raise CopyError("bucket", str(exc)) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CopyError("backend", f"{type(exc).__name__}: {exc}") from exc
        if expected is not None and size != expected:
            raise CopyError("backend", f"short read: {size} of {expected} bytes")
        return size, parts
