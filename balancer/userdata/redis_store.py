"""User data in Redis (`store.kind: redis`): settings, saved workflows and
every other user file are the same through every replica.

Per user (`default`, or a tenant's name) an index of paths with their size
and times, and one key per file; every change is one script
(`redis_scripts.py`) and a settings change is a read-modify-write under
WATCH, so two replicas never lose each other's settings. Paths arrive
canonical (`model.canonical`), and the user is in the key, so one tenant's
requests can only name keys under its own. A Redis that does not answer
raises StoreUnavailable (503 `store_unavailable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from balancer.store.reach import Deadline, reachable
from balancer.userdata import listing
from balancer.userdata import redis_scripts as lua
from balancer.userdata.listing import Meta
from balancer.userdata.model import JSON, SETTINGS_FILE, Kind, UserData, WriteRefused
from balancer.userdata.store import new_user_id, settings_bytes


class RedisUserData:
    """Every user's files, shared by the replicas; `of(user)` is one user's."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        timeout: float,
        now: Callable[[], float] = time.time,
        deadline: Deadline = asyncio.timeout,
    ) -> None:
        self.client = client
        self.prefix = prefix + "userdata:"
        self.timeout = timeout
        self.now = now
        self.deadline = deadline
        script = client.register_script
        self.write_script = script(lua.WRITE)
        self.move_script = script(lua.MOVE)
        self.delete_script = script(lua.DELETE)
        self.add_user_script = script(lua.ADD_USER)

    def reach(self) -> contextlib.AbstractAsyncContextManager[None]:
        return reachable(self.timeout, self.deadline)

    def of(self, user: str) -> UserData:
        return RedisUserFiles(self, user)


class RedisUserFiles:
    """`UserData` of one user in Redis."""

    def __init__(self, shared: RedisUserData, user: str) -> None:
        self.shared = shared
        self.client = shared.client
        self.keys = f"{shared.prefix}{user}:"

    async def _run(self, script: Any, *args: str | bytes | float) -> Any:
        async with self.shared.reach():
            return await script(keys=[], args=[self.keys, *args])

    async def _index(self) -> dict[str, Meta]:
        async with self.shared.reach():
            raw = await self.client.hgetall(self.keys + "index")
        return {_text(path): Meta.decode(meta) for path, meta in raw.items()}

    # ---- users
    async def migrated(self) -> bool:
        async with self.shared.reach():
            return bool(await self.client.exists(self.keys + "root"))

    async def add_user(self, name: str) -> str | None:
        kept = name.strip()
        if not kept:
            raise ValueError("username not provided")
        async with self.shared.reach():
            made = await self.shared.add_user_script(
                keys=[], args=[self.shared.prefix, name, kept, new_user_id(kept)]
            )
        return _text(made) if made is not None else None

    # ---- files
    async def kind(self, rel: str) -> Kind | None:
        if rel == "" and await self.migrated():
            return "dir"
        return listing.kind_of(await self._index(), rel)

    async def read(self, rel: str) -> bytes | None:
        async with self.shared.reach():
            body = await self.client.get(self.keys + "f:" + rel)
        return body if isinstance(body, bytes) or body is None else body.encode()

    async def describe(self, rel: str, full_info: bool) -> JSON | str:
        if not full_info:
            return rel
        async with self.shared.reach():
            meta = await self.client.hget(self.keys + "index", rel)
        return listing.info(rel, Meta.decode(meta)) if meta is not None else rel

    async def write(self, rel: str, body: bytes) -> None:
        _refuse(rel, await self._run(self.shared.write_script, rel, body, self.shared.now()))

    async def delete(self, rel: str) -> None:
        await self._run(self.shared.delete_script, rel)

    async def move(self, source: str, dest: str) -> None:
        answer = await self._run(self.shared.move_script, source, dest, self.shared.now())
        _refuse(dest, answer)

    # ---- settings
    async def settings(self) -> JSON:
        """The settings file (and, as ComfyUI makes the user's directory
        when it reads them, the user's directory exists from now on)."""
        async with self.shared.reach():
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.keys + "f:" + SETTINGS_FILE)
            pipe.set(self.keys + "root", "1")
            raw, _ = await pipe.execute()
        return _settings(raw)

    async def update_settings(self, change: Callable[[JSON], JSON]) -> None:
        key = self.keys + "f:" + SETTINGS_FILE
        async with self.shared.reach(), self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    body = settings_bytes(change(_settings(await pipe.get(key))))
                    now = self.shared.now()
                    meta = Meta(len(body), now, now).encode()
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, body)
                    pipe.hset(self.keys + "index", SETTINGS_FILE, meta)
                    pipe.set(self.keys + "root", "1")
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # another replica changed them meanwhile: again

    # ---- listings
    async def listing(self, rel: str, *, recurse: bool, full_info: bool, split: bool) -> list[Any]:
        index = await self._index()
        return listing.listing(index, rel, recurse=recurse, full_info=full_info, split=split)

    async def listing_v2(self, rel: str) -> list[JSON]:
        return listing.listing_v2(await self._index(), rel)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _settings(raw: bytes | str | None) -> JSON:
    try:
        data = json.loads(raw) if raw is not None else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _refuse(rel: str, answer: bytes | str) -> None:
    if _text(answer) != "ok":
        raise WriteRefused(rel)
