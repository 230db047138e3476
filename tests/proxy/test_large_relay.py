"""A large answer of known length is relayed socket to socket (relay.py):
the same bytes, ranges and HEAD as the backend serves, and a client leaving
mid-body closes the backend connection with one log line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from echo_backend import echo_backend
from structlog.testing import capture_logs
from support import PoolFactory

from balancer.bench.harness import free_port, wait_ready
from balancer.proxy.forward import CHUNK
from tests.ops.test_shutdown import HANG_BOUND, process, until_state, write_config

SIZE = 3 * 1024 * 1024 + 17  # several relay buffers, not a multiple of one
ENDLESS = 1024 * 1024 * 1024  # announced, never all sent
PIECE = 64 * 1024


@dataclass
class Sent:
    """What the backend's streaming handlers saw."""

    ended: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0


def big_backend(folder: Path) -> tuple[web.Application, bytes, Sent]:
    """A backend with a large file, an answer of 1 GB announced that it
    sends while its client reads, and one that stops after 1 MiB of 4."""
    data = os.urandom(SIZE)
    folder.mkdir(parents=True)
    (folder / "big.bin").write_bytes(data)
    seen = Sent()

    async def big(_: web.Request) -> web.FileResponse:
        return web.FileResponse(folder / "big.bin")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = ENDLESS
        await response.prepare(request)
        try:
            while seen.sent < ENDLESS:
                await response.write(b"e" * PIECE)
                seen.sent += PIECE
        except ConnectionError:
            pass  # its client, the balancer, closed the connection
        finally:
            seen.ended.set()
        return response

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 4 * 1024 * 1024
        await response.prepare(request)
        await response.write(b"c" * 1024 * 1024)
        assert request.transport is not None
        request.transport.close()
        return response

    app, _ = echo_backend(folder, {"/big.bin": big, "/endless": endless, "/cut": cut})
    return app, data, seen


async def test_a_large_file_arrives_byte_for_byte_each_time(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    app, data, _ = big_backend(tmp_path / "big")
    pool = await make_pool(0, extra_apps={"big": app})
    for _ in range(3):  # the relayed connection is closed, the next one is new
        resp = await pool.client.get("/big.bin")
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(SIZE)
        assert await resp.read() == data


async def test_a_large_range_is_the_backends_slice(make_pool: PoolFactory, tmp_path: Path) -> None:
    app, data, _ = big_backend(tmp_path / "big")
    pool = await make_pool(0, extra_apps={"big": app})
    first, last = 100, 100 + 2 * CHUNK + 5  # past the size answers are read whole at
    resp = await pool.client.get("/big.bin", headers={"Range": f"bytes={first}-{last}"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert await resp.read() == data[first : last + 1]
    tail = await pool.client.get("/big.bin", headers={"Range": f"bytes=-{CHUNK + 1}"})
    assert await tail.read() == data[-(CHUNK + 1) :]


async def test_head_of_a_large_file_has_its_length_and_no_body(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    app, _, _ = big_backend(tmp_path / "big")
    pool = await make_pool(0, extra_apps={"big": app})
    resp = await pool.client.head("/big.bin")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(SIZE)
    assert await resp.read() == b""
    after = await pool.client.get("/big.bin", headers={"Range": "bytes=0-9"})
    assert after.status == 206 and len(await after.read()) == 10


async def test_a_client_leaving_mid_body_closes_the_backend_connection(
    make_pool: PoolFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, _, seen = big_backend(tmp_path / "big")
    pool = await make_pool(0, extra_apps={"big": app})
    with capture_logs() as logs, caplog.at_level(logging.WARNING, logger="asyncio"):
        resp = await pool.client.get("/endless")
        assert resp.headers["Content-Length"] == str(ENDLESS)
        got = 0
        while got < 4 * 1024 * 1024:
            piece = await resp.content.read(PIECE)
            assert piece, "the body goes on"
            got += len(piece)
        resp.close()  # the client goes, 1 GB announced
        async with asyncio.timeout(30):
            await seen.ended.wait()
        assert seen.sent < ENDLESS, "the backend's connection closed mid-body"
        again = await pool.client.get("/big.bin", headers={"Range": "bytes=0-9"})
        assert again.status == 206  # the balancer serves on
    # The test server cancels a handler whose client left (`serve` does not:
    # one proxy_client_gone line there, below): at most that line, no errors.
    mine = [line["event"] for line in logs if line["event"].startswith("proxy_")]
    assert mine in ([], ["proxy_client_gone"]), mine
    warned = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert warned == [], "no socket warnings from writes to a closed client"


async def test_a_backend_leaving_mid_body_cuts_the_clients_body_short(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    app, _, _ = big_backend(tmp_path / "big")
    pool = await make_pool(0, extra_apps={"big": app})
    with capture_logs() as logs:
        resp = await pool.client.get("/cut")
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    errors = [line for line in logs if line["event"] == "proxy_error"]
    assert len(errors) == 1 and errors[0]["phase"] == "body", logs


async def test_the_same_through_serve_on_its_own_event_loop(tmp_path: Path) -> None:
    """`serve` runs on uvloop, whose transports keep what they could not
    send by reference: the bytes still arrive as the backend sent them."""
    app, data, seen = big_backend(tmp_path / "big")
    server = TestServer(app)
    await server.start_server()
    port = free_port()
    config = tmp_path / "balancer.yaml"
    write_config(config, [{"name": "big", "url": str(server.make_url("")).rstrip("/")}], port)
    front = f"http://127.0.0.1:{port}"
    try:
        with process(["serve", "--config", str(config)], tmp_path / "serve.log"):
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, front + "/balancer/health")
                await until_state(session, front, {"big": "up"})
                async with session.get(front + "/big.bin") as resp:
                    assert await resp.read() == data
                ranged = {"Range": f"bytes=7-{7 + 2 * CHUNK}"}
                async with session.get(front + "/big.bin", headers=ranged) as resp:
                    assert await resp.read() == data[7 : 8 + 2 * CHUNK]
                async with session.get(front + "/endless") as resp:
                    assert len(await resp.content.readexactly(4 * 1024 * 1024)) > 0
                    resp.close()
                async with asyncio.timeout(HANG_BOUND):
                    await seen.ended.wait()
                assert seen.sent < ENDLESS, "the backend's connection closed mid-body"
        # Logged before the backend's socket was closed, so already written.
        events = [json.loads(line)["event"] for line in (tmp_path / "serve.log").open()]
        assert [e for e in events if e.startswith("proxy_")] == ["proxy_client_gone"], events
    finally:
        await server.close()
