"""The session cookie as a credential: same tenant and scope as its key,
sockets included; the same-origin rule for state changes; expiry, tampering,
reloads and sign-out end it; it never reaches a backend."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from echo_backend import echo_backend
from support import PoolFactory, colored

from balancer.config.access_settings import AuthSettings
from balancer.config.errors import ConfigError
from balancer.config.load import parse_settings
from balancer.ops.context import OPS
from balancer.ops.reconfigure import apply_settings

from .auth_helpers import COOKIE, api_key, as_, cookie, keyed_pool, set_cookies, sign_in, site

HTML = {"Accept": "text/html"}
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def test_the_cookie_acts_as_its_key_with_the_same_tenant(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    alice, bob = await sign_in(pool, "alice"), await sign_in(pool, "bob")
    resp = await pool.client.post(
        "/prompt", json={"prompt": colored(1)}, headers=cookie(alice, site(pool))
    )
    assert resp.status == 200
    prompt_id = (await resp.json())["prompt_id"]
    await pool.settle([prompt_id])
    mine = await (await pool.client.get("/history", headers=cookie(alice))).json()
    theirs = await (await pool.client.get("/history", headers=cookie(bob))).json()
    assert list(mine) == [prompt_id] and theirs == {}
    via_key = await (await pool.client.get("/history", headers=as_("alice"))).json()
    assert list(via_key) == [prompt_id]  # the same tenant as alice's key
    root = await sign_in(pool, "root")
    everyone = await (await pool.client.get("/history", headers=cookie(root))).json()
    assert list(everyone) == [prompt_id]  # an admin key's session sees all, as the key does
    ws = await pool.client.ws_connect("/ws", headers=cookie(alice, site(pool)))
    assert (await ws.receive_json())["type"] == "status"
    await ws.close()


async def test_state_changes_by_cookie_need_this_sites_origin(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    alice = await sign_in(pool, "alice")
    body = {"prompt": colored(2)}
    evil = await pool.client.post(
        "/prompt", json=body, headers=cookie(alice, "https://evil.example")
    )
    assert evil.status == 403
    bare = await pool.client.post("/prompt", json=body, headers=cookie(alice))
    assert bare.status == 403  # neither Origin nor Referer: refused
    foreign_referer = {**cookie(alice), "Referer": "https://evil.example/page"}
    assert (await pool.client.post("/prompt", json=body, headers=foreign_referer)).status == 403
    referer = {**cookie(alice), "Referer": site(pool) + "/some/page"}
    assert (await pool.client.post("/prompt", json=body, headers=referer)).status == 200
    socket = await pool.client.get("/ws", headers={**cookie(alice), **UPGRADE})
    assert socket.status == 403
    reads = await pool.client.get("/queue", headers=cookie(alice))
    assert reads.status == 200  # reading needs no origin
    script = await pool.client.post("/prompt", json={"prompt": colored(3)}, headers=as_("alice"))
    assert script.status == 200  # a key sent outright is not a browser's doing


async def test_expired_or_tampered_cookies_are_refused(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    alice = await sign_in(pool, "alice")
    version, name, expires, sid, signature = alice.split(".")
    forged = {
        "another name": ".".join((version, "bob", expires, sid, signature)),
        "a later expiry": ".".join((version, name, str(int(expires) + 9999), sid, signature)),
        "another signature": ".".join((version, name, expires, sid, signature[::-1])),
        "garbage": "not-a-session",
        "non-ascii digits": ".".join((version, name, "²" * 4, sid, signature)),
    }
    for what, value in forged.items():
        assert (await pool.client.get("/queue", headers=cookie(value))).status == 401, what
    assert (await pool.client.get("/queue", headers=cookie(alice))).status == 200
    pool.clock.advance(12 * 3600 + 1)
    assert (await pool.client.get("/queue", headers=cookie(alice))).status == 401
    page = await pool.client.get("/", headers={**HTML, **cookie(alice)}, allow_redirects=False)
    assert page.status == 303 and page.headers["Location"].startswith("/balancer/login")
    assert "Max-Age=0" in set_cookies(page)[COOKIE]  # the dead cookie is dropped


async def test_a_reload_that_removes_or_changes_a_key_ends_its_sessions(
    make_pool: PoolFactory,
) -> None:
    pool = await keyed_pool(make_pool, 1)
    alice, bob, root = [await sign_in(pool, name) for name in ("alice", "bob", "root")]
    rotated = replace(api_key("alice"), sha256=hashlib.sha256(b"alice-rotated").digest())
    b = pool.balancer
    reloaded = replace(b.settings, auth=AuthSettings(keys=(rotated, api_key("root", "admin"))))
    await apply_settings(b, pool.client.app[OPS].members, reloaded)  # type: ignore[index]
    assert (await pool.client.get("/queue", headers=cookie(alice))).status == 401  # changed
    assert (await pool.client.get("/queue", headers=cookie(bob))).status == 401  # removed
    assert (await pool.client.get("/queue", headers=cookie(root))).status == 200  # untouched
    again = await pool.client.post(
        "/balancer/login", data={"key": "alice-rotated"}, allow_redirects=False
    )
    assert again.status == 303


async def test_sign_out_ends_the_session(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    alice = await sign_in(pool, "alice")
    resp = await pool.client.post(
        "/balancer/logout", headers=cookie(alice, site(pool)), allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/balancer/login"
    assert "Max-Age=0" in set_cookies(resp)[COOKIE]
    assert (await pool.client.get("/queue", headers=cookie(alice))).status == 401  # a kept copy


async def test_the_cookie_never_reaches_a_backend(make_pool: PoolFactory, tmp_path: Path) -> None:
    app, seen = echo_backend(tmp_path / "echo")
    pool = await keyed_pool(make_pool, 0, extra_apps={"echo": app})
    alice = await sign_in(pool, "alice")
    jar = {"Cookie": f"theme=dark; {COOKIE}={alice}; lang=en"}
    resp = await pool.client.get("/custom/route", headers=jar)
    assert resp.status == 200
    forwarded = seen[-1]["headers"]
    assert forwarded.get("Cookie") == "theme=dark; lang=en"
    assert alice not in repr(seen)
    only = await pool.client.get("/custom/route", headers=cookie(alice))
    assert only.status == 200 and "Cookie" not in seen[-1]["headers"]


async def test_the_secret_is_kept_so_sessions_outlive_a_restart(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    first = await keyed_pool(make_pool, 1)
    alice = await sign_in(first, "alice")
    secret = tmp_path / "balancer-data" / "session_secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    restarted = await keyed_pool(make_pool, 1)  # the same data_dir
    assert (await restarted.client.get("/queue", headers=cookie(alice))).status == 200
    keys = (api_key("alice"),)
    other = AuthSettings(keys=keys, session_secret=b"another secret of some length")
    elsewhere = await make_pool(1, settings_overrides={"auth": other})
    assert (await elsewhere.client.get("/queue", headers=cookie(alice))).status == 401


def test_session_settings_parse_with_their_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_SECRET", "s" * 32)
    monkeypatch.setenv("SHORT_SECRET", "short")
    base = {"backends": [{"url": "http://a:1"}]}
    auth = {
        "session_ttl": "30m",
        "session_secret": {"env": "SESSION_SECRET"},
        "trusted_proxies": ["10.0.0.5", "192.168.0.0/16"],
    }
    settings = parse_settings({**base, "auth": auth})
    assert settings.auth.session_ttl == 1800.0
    assert settings.auth.session_secret == b"s" * 32
    assert settings.auth.trusted_proxies == ("10.0.0.5/32", "192.168.0.0/16")
    assert "s" * 32 not in repr(settings)
    bad = {"session_ttl": "0s", "session_secret": "inline", "trusted_proxies": ["proxy.lan"]}
    with pytest.raises(ConfigError) as caught:
        parse_settings({**base, "auth": bad})
    assert caught.value.errors == [
        "auth.session_ttl: must be > 0",
        "auth.session_secret: must be {env: VARIABLE} or null",
        "auth.trusted_proxies: not an IP address or network: 'proxy.lan'",
    ]
    with pytest.raises(ConfigError, match="SHORT_SECRET must hold at least 16"):
        parse_settings({**base, "auth": {"session_secret": {"env": "SHORT_SECRET"}}})
