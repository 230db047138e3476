"""The Redis user-data store (several replicas) answers as the file store
(one balancer, ComfyUI's own directory semantics) does: the same calls on
both give the same listings, kinds, contents and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from balancer.userdata import UserFiles
from balancer.userdata.model import PathRefused, UserData, WriteRefused, canonical
from balancer.userdata.redis_store import RedisUserData


@pytest.fixture
async def stores(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[UserData, UserData]]:
    client = redis.Redis.from_url(redis_url)
    yield UserFiles(tmp_path / "user", "alice"), RedisUserData(client, "t:", 5.0).of("alice")
    await client.aclose()


def without_times(value: Any) -> Any:
    if isinstance(value, list):
        return sorted((without_times(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("modified", "created")}
    return value


async def both(stores: tuple[UserData, UserData], call: str, *args: Any, **kw: Any) -> Any:
    answers = [await getattr(store, call)(*args, **kw) for store in stores]
    assert without_times(answers[0]) == without_times(answers[1]), (call, args, kw)
    return answers[1]


async def test_the_redis_store_lists_and_refuses_as_the_file_store(
    stores: tuple[UserData, UserData],
) -> None:
    for name in ("workflows/a.json", "workflows/sub/b.json", "workflows/.hidden", "top.json"):
        await both(stores, "write", canonical(name), name.encode())
    for rel in ("", "workflows", "workflows/sub", "workflows/a.json", "nothing", "workflows/a"):
        await both(stores, "kind", rel)
    for recurse in (False, True):
        for full_info in (False, True):
            for split in (False, True):
                flags = {"recurse": recurse, "full_info": full_info, "split": split}
                await both(stores, "listing", "workflows", **flags)
    await both(stores, "listing", "workflows/a.json", recurse=True, full_info=False, split=False)
    await both(stores, "listing_v2", "")
    await both(stores, "listing_v2", "workflows")
    await both(stores, "describe", "top.json", True)
    await both(stores, "move", "workflows/a.json", "moved/a.json")
    await both(stores, "listing_v2", "")
    await both(stores, "delete", "top.json")
    assert await both(stores, "kind", "top.json") is None
    for store in stores:
        read = await store.read("moved/a.json")
        data = read.read_bytes() if isinstance(read, Path) else read
        assert data == b"workflows/a.json"
        assert await store.read("workflows") is None, "a directory is no file"
        with pytest.raises(WriteRefused):
            await store.write("workflows", b"x")  # a directory
        with pytest.raises(WriteRefused):
            await store.write("moved/a.json/x", b"x")  # under a file


async def test_settings_change_in_one_step_and_make_the_user(
    stores: tuple[UserData, UserData],
) -> None:
    await both(stores, "migrated")
    await both(stores, "settings")
    await both(stores, "update_settings", lambda old: {**old, "a": 1})
    await both(stores, "update_settings", lambda old: {**old, "b": [2]})
    assert await both(stores, "settings") == {"a": 1, "b": [2]}
    assert await both(stores, "migrated") is True
    assert await both(stores, "listing", "", recurse=False, full_info=False, split=False) == [
        "comfy.settings.json"
    ]


@pytest.mark.parametrize(
    ("name", "canonical_path"),
    [("a/./b/../c.json", "a/c.json"), ("%2E%2E%2Fx", None), ("../bob/x", None), ("/etc", None)],
)
def test_names_resolve_once_before_any_store_sees_them(
    name: str, canonical_path: str | None
) -> None:
    if canonical_path is None:
        with pytest.raises(PathRefused):
            canonical(name)
    else:
        assert canonical(name) == canonical_path
