"""Client mistakes get a 4xx in ComfyUI's error shape, never a 500 (issue 12,
defect 8): JSON nested 10k deep, lone surrogates, webhook URLs urllib rejects."""

from __future__ import annotations

import pytest
from support import PoolFactory, colored

from balancer.config.delivery_settings import WebhookSettings

from .auth_helpers import as_, keyed_pool

DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"prompt": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001
SURROGATE = b'{"prompt": {"1": {"class_type": "SaveImage", "inputs": {"x": "\\ud800"}}}}'
SURROGATE_KEY = b'{"prompt": {"\\udc00": {"class_type": "SaveImage", "inputs": {}}}}'
ROUTES = ["/prompt", "/interrupt", "/queue", "/history", "/settings", "/settings/x", "/users"]


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, SURROGATE, SURROGATE_KEY])
@pytest.mark.parametrize("path", ROUTES)
async def test_deep_or_surrogate_json_is_a_4xx(
    make_pool: PoolFactory, body: bytes, path: str
) -> None:
    pool = await keyed_pool(make_pool, 1)
    for prefix in ("", "/api"):
        resp = await pool.client.post(prefix + path, data=body, headers=as_("bob"))
        assert 400 <= resp.status < 500 or (path == "/interrupt" and resp.status == 200), (
            path,
            resp.status,
        )
        if resp.status >= 400 and path.startswith(("/prompt", "/queue", "/history")):
            assert set((await resp.json())["error"]) == {"type", "message", "details", "extra_info"}


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "http://127.0.0.1:99999/x", "http://127.0.0.1:abc/", "http://127.0.0.1/a b"],
)
async def test_a_webhook_url_urllib_rejects_is_a_400(make_pool: PoolFactory, url: str) -> None:
    settings = WebhookSettings(secret="s", allow=("127.0.0.1", "::1"))
    pool = await make_pool(1, settings_overrides={"webhooks": settings})
    body = {"prompt": colored(1), "extra_data": {"webhook": url}}
    resp = await pool.client.post("/prompt", json=body)
    assert resp.status == 400
    assert (await resp.json())["error"]["type"] == "invalid_webhook"
