"""Authentication: every route class without a key, with a wrong key, and
the open, status and admin routes."""

from __future__ import annotations

import pytest
from support import PoolFactory, colored

from balancer.auth.setup import anonymous_refusal
from balancer.config.access_settings import AdminSettings, AuthSettings
from balancer.config.settings import Settings

from .auth_helpers import as_, bearer, keyed_pool

ROUTES = [
    ("POST", "/prompt"),
    ("GET", "/prompt"),
    ("GET", "/queue"),
    ("POST", "/queue"),
    ("GET", "/history"),
    ("GET", "/history/x"),
    ("POST", "/interrupt"),
    ("GET", "/system_stats"),
    ("GET", "/view?filename=a.png"),
    ("POST", "/upload/image"),
    ("GET", "/object_info"),
    ("GET", "/api/jobs/x"),
    ("GET", "/ws"),
    ("GET", "/some/pass/through"),
    ("GET", "/api/userdata?dir=x"),
]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer no"}])
async def test_every_client_route_needs_a_valid_key(
    make_pool: PoolFactory, headers: dict[str, str]
) -> None:
    pool = await keyed_pool(make_pool, 1)
    bodies = set()
    for method, path in ROUTES:
        resp = await pool.client.request(method, path, headers=headers)
        assert resp.status == 401, (method, path)
        bodies.add(await resp.text())
    assert len(bodies) == 1  # one answer for missing and wrong: no hint
    assert '"type": "unauthorized"' in bodies.pop()


async def test_each_way_of_presenting_a_key_works(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    assert (await pool.client.get("/queue", headers=as_("alice"))).status == 200
    assert (await pool.client.get("/queue", headers=bearer("alice"))).status == 200
    assert (await pool.client.get("/queue", params={"token": "alice-secret"})).status == 200
    ws = await pool.client.ws_connect("/ws", params={"token": "bob-secret"})
    assert (await ws.receive_json())["type"] == "status"
    await ws.close()


async def test_health_is_open_and_status_follows_public_status(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    assert (await pool.client.get("/balancer/health")).status == 200
    assert (await pool.client.get("/balancer/ready")).status == 200
    assert (await pool.client.get("/metrics")).status == 200
    closed = await keyed_pool(
        make_pool, 1, settings_overrides={"auth": AuthSettings(public_status=False, keys=())}
    )
    assert (await closed.client.get("/metrics")).status == 200  # no keys: anonymous
    from .auth_helpers import api_key

    hidden = await keyed_pool(
        make_pool,
        1,
        settings_overrides={"auth": AuthSettings(keys=(api_key("alice"),), public_status=False)},
    )
    for path in ("/metrics", "/balancer/status", "/balancer"):
        assert (await hidden.client.get(path)).status == 401
        assert (await hidden.client.get(path, headers=as_("alice"))).status == 200


async def test_admin_routes_need_the_admin_token_or_an_admin_key(make_pool: PoolFactory) -> None:
    overrides = {"admin": AdminSettings(token="admin-token")}
    pool = await keyed_pool(make_pool, 1, settings_overrides=overrides)
    assert (await pool.client.get("/balancer/backends")).status == 401
    assert (await pool.client.get("/balancer/backends", headers=as_("alice"))).status == 401
    assert (await pool.client.get("/balancer/backends", headers=as_("root"))).status == 200
    token = {"Authorization": "Bearer admin-token"}
    assert (await pool.client.get("/balancer/backends", headers=token)).status == 200


async def test_the_key_is_not_forwarded_to_backends(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    resp = await pool.client.post(
        "/prompt", json={"prompt": colored(1)}, params={"token": "alice-secret"}
    )
    assert resp.status == 200
    await pool.settle([(await resp.json())["prompt_id"]])
    (emulator,) = pool.emulators.values()
    assert "alice-secret" not in repr(emulator.__dict__)


def test_serve_refuses_a_public_address_without_keys() -> None:
    assert anonymous_refusal(Settings(), "127.0.0.1") is None
    assert anonymous_refusal(Settings(), "::1") is None
    assert anonymous_refusal(Settings(), "0.0.0.0") is not None
    allowed = Settings(auth=AuthSettings(allow_anonymous=True))
    assert anonymous_refusal(allowed, "0.0.0.0") is None


def test_keys_never_appear_in_reprs() -> None:
    from balancer.config.load import parse_settings

    settings = parse_settings(
        {"backends": [{"url": "http://a:1"}], "auth": {"keys": [{"name": "a", "key": "hunter2"}]}}
    )
    assert "hunter2" not in repr(settings)
    assert settings.auth.keys[0].sha256.hex() not in repr(settings)


def test_auth_config_errors_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    from balancer.config.errors import ConfigError
    from balancer.config.load import parse_settings

    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    doc = {
        "backends": [{"url": "http://a:1"}],
        "auth": {"keys": [{"name": "a"}, {"name": "b", "env": "NO_SUCH_KEY_VAR"}]},
        "webhooks": {"url": "http://x/y"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(doc)
    assert caught.value.errors == [
        "auth.keys[0]: needs exactly one of key, sha256, env",
        "auth.keys[1].env: environment variable NO_SUCH_KEY_VAR is not set",
        "webhooks.url: its host is not in webhooks.allow",
        "webhooks.secret: required when webhooks are configured",
    ]
