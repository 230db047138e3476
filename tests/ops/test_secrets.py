"""No key, token or URL password in a log line, a status page or an error
(issue 12, defect 6)."""

from __future__ import annotations

import asyncio
import io
import json

from aiohttp import web
from support import PoolFactory

from balancer.config.access_settings import AdminSettings
from balancer.config.server_settings import LogSettings
from balancer.connguard import ConnectionLimits
from balancer.logs import configure_logging
from balancer.redact import redact
from balancer.runner import start_guarded

MALFORMED = [
    b"GET /queue HTTP/1.1\nHost: x\nAuthorization: Bearer SECRET-1\nX-API-Key: SECRET-2\n\n",
    b"GET /queue?token=SECRET-3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SEC\x01RET-4\r\n\r\n",
    b"GET /q HTTP/1.1\r\nHost: x\r\nX-API-Key: SECRET\x00-5\r\nCookie: SECRET-6\r\n\r\n",
]


async def test_a_malformed_request_never_logs_its_credentials() -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream)
    app = web.Application()
    running = await start_guarded(app, "127.0.0.1", 0, ConnectionLimits(10.0, 100))
    for payload in MALFORMED:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(payload)
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.0 400")
        assert b"SEC" not in answer  # aiohttp's own answer would quote the raw header
        writer.close()
    await running.runner.cleanup()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["bad_http_request"] * 3
    assert "SECRET" not in stream.getvalue() and "SEC" not in stream.getvalue()


def test_redact_masks_every_form() -> None:
    text = redact(
        "http://user:pw@h:1/x ws://a:b@h Authorization: Bearer k1 x-api-key=k2 /v?a=1&token=k3"
    )
    for secret in ("user", "pw", "a:b", "k1", "k2", "k3"):
        assert secret not in text
    assert "http://***@h:1/x" in text


async def test_status_and_admin_rows_never_show_a_url_password(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, settings_overrides={"admin": AdminSettings(token="t")})
    settings = pool.balancer.settings
    (backend,) = settings.backends
    secret = backend.url.replace("http://", "http://operator:hunter2@")
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream)
    headers = {"Authorization": "Bearer t"}
    body = {"name": "extra", "url": secret}
    assert (await pool.client.post("/balancer/backends", json=body, headers=headers)).status == 201
    await pool.probe()
    for path in ("/balancer/status", "/balancer/backends", "/metrics"):
        text = await (await pool.client.get(path, headers=headers)).text()
        assert "extra" in text
        assert "hunter2" not in text and "operator" not in text, path
    assert "backend_added" in stream.getvalue()
    assert "hunter2" not in stream.getvalue()
    rows = await (await pool.client.get("/balancer/status")).json()
    extra = next(row for row in rows["backends"] if row["name"] == "extra")
    assert extra["state"] == "up"  # the real URL, password and all, is still used
