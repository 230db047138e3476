"""Placement: the files a prompt references go to the backend that runs it.

This is the Submitter's `BeforeDispatch` hook. For each reference (see
`refs`) it finds the bytes (the upload store, or the backend that wrote an
`@backend` output, fetched with GET /view) and uploads them to the chosen
backend unless that backend already has those exact bytes under that name.

What a backend has is remembered per backend and forgotten when it may have
restarted: its event channel reconnected (a new channel id), or a probe
succeeded after a failure. Content hashes of prompts not yet finished are
pinned, so retention never evicts a file a queued or running job needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from balancer.backends.registry import Registry
from balancer.backends.state import Backend, LoadSnapshot
from balancer.files import transfer
from balancer.files.paths import FileKey
from balancer.files.refs import Ref, find_refs, names_in, rewrite
from balancer.files.uploads import Uploads
from balancer.logs import get_logger

log = get_logger("balancer.files")

# Unchanged, or (new value or None, sha of the bytes placed, bytes sent).
Outcome = tuple[str | None, str | None, int]


@dataclass
class Holdings:
    """What one backend holds as far as the balancer placed it, for one
    channel generation: requested key -> (sha256, the key the backend used)."""

    epoch: str | None
    files: dict[FileKey, tuple[str, FileKey]] = field(default_factory=dict)


class Placement:
    def __init__(
        self,
        store: Uploads,
        registry: Registry,
        session: aiohttp.ClientSession,
        is_unfinished: Callable[[str], Awaitable[bool]],
        fetch_limit: int,
        waiting: Callable[[], Iterable[dict[str, Any]]] = tuple,
    ) -> None:
        self.store = store
        self.registry = registry
        self.session = session
        self.is_unfinished = is_unfinished
        self.fetch_limit = fetch_limit
        self.waiting = waiting
        self._held: dict[str, Holdings] = {}
        self._fetched: dict[tuple[str, FileKey], tuple[str, str | None]] = {}
        self._inflight: dict[str, set[str]] = {}
        self._pushing: dict[tuple[str, FileKey, str], asyncio.Future[FileKey]] = {}

    async def __call__(self, request: dict[str, Any], backend: Backend) -> dict[str, Any]:
        prompt = request.get("prompt")
        stored = await self.store.lookup_many(names_in(prompt))
        refs = find_refs(prompt, stored)
        if not refs or not isinstance(prompt, dict):
            return request
        prompt_id = str(request.get("prompt_id"))
        shas = self._inflight.setdefault(prompt_id, set())
        started = time.perf_counter()
        changes: dict[tuple[str, str], str] = {}
        sent = 0
        for ref in refs:
            value, sha, size = await self._place(ref, backend, stored)
            if sha is not None:
                shas.add(sha)
            if value is not None and value != ref.value:
                changes[(ref.node, ref.input)] = value
            sent += size
        log.info(
            "placed",
            prompt_id=prompt_id,
            backend=backend.name,
            refs=len(refs),
            rewritten=len(changes),
            bytes_sent=sent,
            placement_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return {**request, "prompt": rewrite(prompt, changes)}

    async def _place(self, ref: Ref, backend: Backend, stored: dict[FileKey, str]) -> Outcome:
        if ref.owner is None:
            sha = stored.get(ref.key)
            if sha is None:
                return None, None, 0  # not ours: the backend may have it, or says 400
            return await self._ensure(backend, ref, ref.key, sha)
        owner = self.registry.get(ref.owner)
        if owner is None:
            return None, None, 0
        if owner.name == backend.name:  # its own file: just drop the prefix
            return ref.placed_value(ref.key), None, 0
        sha = await self._fetch(owner, ref.key)
        if sha is None:
            return None, None, 0
        sub = f"@{owner.name}/{ref.key.type}"
        sub = f"{sub}/{ref.key.subfolder}" if ref.key.subfolder else sub
        target = FileKey("input", sub, ref.key.name)
        value, _, size = await self._ensure(backend, ref, target, sha)
        return value or target.relative, sha, size

    async def _ensure(self, backend: Backend, ref: Ref, key: FileKey, sha: str) -> Outcome:
        """Put `sha` on `backend` as `key` unless it is already there."""
        await self.store.touch(sha)
        held = self._holdings(backend)
        known = held.files.get(key)
        if known is not None and known[0] == sha:
            return _value_if_renamed(ref, key, known[1]), sha, 0
        blob = await self.store.blob_file(sha)
        if blob is None:  # evicted meanwhile: the backend says 400 if it lacks it
            return None, None, 0
        task_key = (backend.name, key, sha)
        pending = self._pushing.get(task_key)
        if pending is not None:
            return _value_if_renamed(ref, key, await asyncio.shield(pending)), sha, 0
        future: asyncio.Future[FileKey] = asyncio.get_running_loop().create_future()
        self._pushing[task_key] = future
        started = time.perf_counter()
        try:
            actual = await transfer.push(self.session, backend.url, key, blob)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._pushing[task_key]
        future.set_result(actual)
        if held is self._held.get(backend.name):
            held.files[key] = (sha, actual)
        size = blob.stat().st_size
        log.info(
            "placed_file",
            backend=backend.name,
            type=key.type,
            bytes=size,
            renamed=actual != key,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return _value_if_renamed(ref, key, actual), sha, size

    async def _fetch(self, owner: Backend, key: FileKey) -> str | None:
        """The owner's file in the store (fetched once per owner generation)."""
        cached = self._fetched.get((owner.name, key))
        fresh = cached is not None and cached[1] == owner.channel_id
        if cached is not None and fresh and await self.store.has_blob(cached[0]):
            return cached[0]
        sha = await transfer.fetch(self.session, owner.url, key, self.store, self.fetch_limit)
        if sha is not None:
            self._fetched[(owner.name, key)] = (sha, owner.channel_id)
            log.info("fetched_output", owner=owner.name, type=key.type)
        return sha

    def _holdings(self, backend: Backend) -> Holdings:
        held = self._held.get(backend.name)
        if held is None or held.epoch != backend.channel_id:
            held = self._held[backend.name] = Holdings(backend.channel_id)
        return held

    def forget(self, backend: str) -> None:
        """The backend may have lost its files: send them again next time."""
        if self._held.pop(backend, None) is not None:
            log.info("placement_forgotten", backend=backend)
        for owner, key in [k for k in self._fetched if k[0] == backend]:
            del self._fetched[(owner, key)]

    async def on_probe(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        """Prober listener: the first success after a failure may be a restart."""
        if backend.successes == 1:
            self.forget(backend.name)
        await self.evict()

    async def protected(self) -> set[str]:
        """Content hashes of prompts still waiting in the balancer's queue,
        being placed, queued on a backend or running."""
        for prompt_id in [p for p in list(self._inflight) if not await self.is_unfinished(p)]:
            self._inflight.pop(prompt_id, None)
        shas = set().union(*self._inflight.values()) if self._inflight else set()
        named = {
            ref.key
            for request in self.waiting()
            for ref in find_refs(request.get("prompt"), ())
            if ref.owner is None
        }
        return shas | set((await self.store.lookup_many(named)).values())

    async def evict(self) -> list[str]:
        return await self.store.evict(await self.protected())


def _value_if_renamed(ref: Ref, wanted: FileKey, actual: FileKey) -> str | None:
    return ref.placed_value(actual) if actual != wanted else None
