"""Backend-wide routes are admin only with keys on, and user data is kept per
tenant (issue 12, defect 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import PoolFactory

from .auth_helpers import as_, keyed_pool
from .recording import Recorder

ADMIN_ONLY = [
    ("GET", "/internal/files/output"),
    ("GET", "/api/internal/files/output"),
    ("GET", "/api//internal/folder_paths"),
    ("GET", "/internal/logs"),
    ("GET", "/_emulator/state"),
    ("POST", "/_emulator/faults"),
    ("POST", "/free"),
    ("POST", "/api/free"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
async def test_backend_wide_routes_need_an_admin_key(
    make_pool: PoolFactory, method: str, path: str
) -> None:
    recorder = Recorder()
    pool = await keyed_pool(make_pool, 1, middlewares=(recorder.middleware,))
    before = len(recorder.seen)
    resp = await pool.client.request(method, path, json={}, headers=as_("bob"))
    assert resp.status == 403
    assert (await resp.json())["error"]["type"] == "forbidden"
    assert recorder.seen[before:] == []  # nothing reached a backend
    admin = await pool.client.request(method, path, json={}, headers=as_("root"))
    assert admin.status != 403


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
async def test_without_keys_everyone_may_call_them(
    make_pool: PoolFactory, method: str, path: str
) -> None:
    pool = await make_pool(1)
    resp = await pool.client.request(method, path, json={})
    assert resp.status not in (401, 403)


async def test_user_data_is_kept_per_tenant(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    client = pool.client
    path = "/api/userdata/workflows%2Fmine.json"
    saved = await client.post(path, data=b'{"alice": 1}', headers=as_("alice"))
    assert saved.status == 200
    await client.post("/api/settings/Comfy.Theme", json="alice-dark", headers=as_("alice"))
    assert (await client.get(path, headers=as_("bob"))).status == 404
    listing = await client.get("/api/userdata?dir=workflows", headers=as_("bob"))
    assert await listing.json() == []
    assert await (await client.get("/api/settings", headers=as_("bob"))).json() == {}
    assert (await client.get(path, headers=as_("root"))).status == 404  # admin: `default`
    mine = await client.get(path, headers=as_("alice"))
    assert await mine.read() == b'{"alice": 1}'
    data = Path(pool.balancer.settings.data_dir) / "user"
    assert (data / "alice" / "workflows" / "mine.json").read_bytes() == b'{"alice": 1}'
    bob_saved = await client.post(path, data=b'{"bob": 2}', headers=as_("bob"))
    assert bob_saved.status == 200
    assert await (await client.get(path, headers=as_("alice"))).read() == b'{"alice": 1}'


def test_a_client_key_cannot_be_named_default() -> None:
    """`default` is the user-data directory admin keys and anonymous callers
    share: a client key of that name would read and write theirs."""
    from balancer.config.errors import ConfigError
    from balancer.config.load import parse_settings

    def keys(*entries: dict[str, str]) -> dict[str, object]:
        return {"backends": [{"url": "http://a:1"}], "auth": {"keys": list(entries)}}

    with pytest.raises(ConfigError) as caught:
        parse_settings(keys({"name": "default", "key": "k"}))
    assert caught.value.errors == ["auth.keys[0].name: 'default' is reserved for admin keys"]
    admin = parse_settings(keys({"name": "default", "key": "k", "scope": "admin"}))
    assert admin.auth.keys[0].name == "default"
