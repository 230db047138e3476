"""Pools with API keys: alice and bob (client keys) and root (admin key)."""

from __future__ import annotations

import hashlib
from typing import Any

from support import Pool, PoolFactory

from balancer.config.access_settings import ApiKey, AuthSettings

SECRETS = {"alice": "alice-secret", "bob": "bob-secret", "root": "root-secret"}


def api_key(name: str, scope: str = "client", **limits: Any) -> ApiKey:
    digest = hashlib.sha256(SECRETS.get(name, name).encode()).digest()
    return ApiKey(name, digest, scope, **limits)  # type: ignore[arg-type]


def as_(name: str) -> dict[str, str]:
    return {"X-API-Key": SECRETS[name]}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


async def keyed_pool(make_pool: PoolFactory, count: int = 2, *keys: ApiKey, **kwargs: Any) -> Pool:
    keys = keys or (api_key("alice"), api_key("bob"), api_key("root", "admin"))
    overrides = {"auth": AuthSettings(keys=keys), **kwargs.pop("settings_overrides", {})}
    return await make_pool(count, settings_overrides=overrides, **kwargs)


async def submit_as(pool: Pool, name: str, prompt: dict[str, Any], **extra: Any) -> str:
    resp = await pool.client.post("/prompt", json={"prompt": prompt, **extra}, headers=as_(name))
    assert resp.status == 200, await resp.text()
    prompt_id: str = (await resp.json())["prompt_id"]
    return prompt_id


COOKIE = "comfyui_balancer_session"


def site(pool: Pool) -> str:
    """The balancer's own origin, as a browser on its pages sends it."""
    return str(pool.client.make_url("")).rstrip("/")


def set_cookies(resp: Any) -> dict[str, str]:
    """Set-Cookie headers of an answer, by cookie name (the whole header)."""
    found = {}
    for header in resp.headers.getall("Set-Cookie", []):
        found[header.split("=", 1)[0]] = header
    return found


async def sign_in(pool: Pool, name: str, **form: str) -> str:
    """POST the sign-in form with `name`'s key; the session cookie's value.
    The client's cookie jar is emptied, so each request names its cookie."""
    data = {"key": SECRETS[name], **form}
    resp = await pool.client.post("/balancer/login", data=data, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    pool.client.session.cookie_jar.clear()
    header = set_cookies(resp)[COOKIE]
    return header.split("=", 1)[1].split(";", 1)[0]


def cookie(value: str, origin: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"{COOKIE}={value}"}
    return headers if origin is None else {**headers, "Origin": origin}
