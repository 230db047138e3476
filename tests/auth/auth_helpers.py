"""Pools with API keys: alice and bob (client keys) and root (admin key)."""

from __future__ import annotations

import hashlib
from typing import Any

from support import Pool, PoolFactory

from balancer.config.model import ApiKey, AuthSettings

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
