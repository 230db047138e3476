"""POSTs to backends over the balancer's kept connections (balancer.http1,
through Upstream): each POST gets its own answer, whole, or the error the
dispatcher acts on (a refused connection: the backend saw nothing; a lost
one: it may have the prompt), never a truncated or another request's answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from balancer.http1.posts import KeptPosts
from balancer.upstream import (
    Upstream,
    UpstreamConnectError,
    UpstreamError,
    UpstreamReply,
    UpstreamReset,
    UpstreamTimeout,
)

# What the scripted backend does with one request: given its body, write
# (or not) to the writer.
Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


def answer(body: bytes, *, status: int = 200, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json; charset=utf-8\r\n{extra}"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def echo(body: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(answer(body))


@dataclass
class Backend:
    """A TCP server answering each request with its script (echo by default),
    counting the connections it was given."""

    scripts: list[Script] = field(default_factory=list)
    connections: int = 0
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                script = self.scripts.pop(0) if self.scripts else echo
                await script(body, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def backend(*scripts: Script) -> AsyncIterator[Backend]:
    scripted = Backend(list(scripts))
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    scripted.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield scripted


@contextlib.asynccontextmanager
async def upstream(deadlines: list[asyncio.Timeout] | None = None) -> AsyncIterator[Upstream]:
    """An Upstream whose POSTs go over kept connections; with `deadlines`,
    each call's deadline is recorded there and never fires on its own."""

    def deadline(url: str, seconds: float) -> asyncio.Timeout:
        timeout = asyncio.timeout(None if deadlines is not None else seconds)
        if deadlines is not None:
            deadlines.append(timeout)
        return timeout

    posts = KeptPosts(connect_timeout=30.0, idle_timeout=60.0)
    async with aiohttp.ClientSession() as session:
        yield Upstream(session, 30.0, 30.0, deadline, posts)
    posts.close()


def prompt(n: int) -> bytes:
    return json.dumps({"prompt": {}, "prompt_id": f"p{n}"}).encode()


async def test_posts_share_one_connection_and_each_gets_its_own_answer() -> None:
    async with backend() as gpu, upstream() as up:
        replies = [await up.call("POST", gpu.url + "/prompt", body=prompt(n)) for n in range(3)]
    assert [r.body for r in replies] == [prompt(n) for n in range(3)]
    assert replies[0] == UpstreamReply(200, prompt(0), "application/json")
    assert gpu.connections == 1


async def test_a_refusal_comes_back_as_the_backend_gave_it() -> None:
    refusal = b'{"error": {"type": "prompt_outputs_failed_validation"}, "node_errors": {}}'

    async def refuse(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(refusal, status=400))

    async with backend(refuse) as gpu, upstream() as up:
        reply = await up.call("POST", gpu.url + "/prompt", body=prompt(0))
        after = await up.call("POST", gpu.url + "/prompt", body=prompt(1))
    assert reply == UpstreamReply(400, refusal, "application/json")
    assert after.body == prompt(1)


async def test_an_answer_in_pieces_and_chunks_is_read_whole() -> None:
    async def chunked(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n")
        writer.write(b"Content-Type: application/json\r\n\r\n")
        for i in range(0, len(body), 7):
            piece = body[i : i + 7]
            for byte in b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n":
                writer.write(bytes([byte]))  # one byte a write: every split point
                await writer.drain()
        writer.write(b"0\r\nX-Trailer: 1\r\n\r\n")

    async with backend(chunked) as gpu, upstream() as up:
        reply = await up.call("POST", gpu.url + "/prompt", body=prompt(0))
        after = await up.call("POST", gpu.url + "/prompt", body=prompt(1))
    assert reply == UpstreamReply(200, prompt(0), "application/json")
    assert after.body == prompt(1) and gpu.connections == 1


async def test_a_connection_lost_under_a_post_is_a_reset() -> None:
    """The backend took the request and its connection ended: it may have
    the prompt (the dispatcher then follows it, or sends it again later)."""

    async def vanish(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with backend(vanish) as gpu, upstream() as up:
        with pytest.raises(UpstreamReset):
            await up.call("POST", gpu.url + "/prompt", body=prompt(0))
        after = await up.call("POST", gpu.url + "/prompt", body=prompt(1))
    assert after.body == prompt(1)


async def test_an_answer_cut_short_is_a_reset_never_a_truncated_body() -> None:
    async def cut(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(body)[:-5])
        await writer.drain()
        writer.close()

    async with backend(cut) as gpu, upstream() as up:
        with pytest.raises(UpstreamReset):
            await up.call("POST", gpu.url + "/prompt", body=prompt(0))


async def test_garbage_is_an_error_and_the_connection_is_not_used_again() -> None:
    async def garbage(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SPDY/3 200 OK\r\n\r\n")

    async with backend(garbage) as gpu, upstream() as up:
        with pytest.raises(UpstreamError) as raised:
            await up.call("POST", gpu.url + "/prompt", body=prompt(0))
        after = await up.call("POST", gpu.url + "/prompt", body=prompt(1))
    assert not isinstance(raised.value, UpstreamReset | UpstreamConnectError)
    assert after.body == prompt(1) and gpu.connections == 2


async def test_an_answer_too_late_is_never_taken_for_the_next_posts() -> None:
    """The first POST timed out; its answer comes afterwards. The next POST
    gets its own answer, not that one."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def late(body: bytes, writer: asyncio.StreamWriter) -> None:
        arrived.set()
        await release.wait()
        writer.write(answer(body))

    deadlines: list[asyncio.Timeout] = []
    async with backend(late) as gpu, upstream(deadlines) as up:
        first = asyncio.ensure_future(up.call("POST", gpu.url + "/prompt", body=prompt(0)))
        await asyncio.wait_for(arrived.wait(), 10.0)  # the backend has it; no answer yet
        deadlines[0].reschedule(asyncio.get_running_loop().time())
        with pytest.raises(UpstreamTimeout):
            await first
        release.set()
        after = await up.call("POST", gpu.url + "/prompt", body=prompt(1))
    assert after.body == prompt(1)


async def test_a_connection_asked_to_close_is_not_used_again() -> None:
    """The backend says it closes the connection (and may do so at any
    moment): the next POST does not go on it."""

    async def closing(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(body, extra="Connection: close\r\n"))

    async with backend(closing) as gpu, upstream() as up:
        replies = [await up.call("POST", gpu.url + "/prompt", body=prompt(n)) for n in range(2)]
    assert [r.body for r in replies] == [prompt(0), prompt(1)]
    assert gpu.connections == 2


async def test_a_refused_connection_names_the_backend() -> None:
    async with backend() as gpu:
        url = gpu.url
    async with upstream() as up:
        with pytest.raises(UpstreamConnectError) as raised:
            await up.call("POST", url + "/prompt", body=prompt(0))
    assert str(raised.value) == f"Connection refused ({url.removeprefix('http://')})"


async def test_an_answer_that_runs_to_the_connections_end_is_read_whole() -> None:
    async def to_the_end(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    async with backend(to_the_end) as gpu, upstream() as up:
        reply = await up.call("POST", gpu.url + "/prompt", body=prompt(0))
        after = await up.call("POST", gpu.url + "/prompt", body=prompt(1))
    assert reply == UpstreamReply(200, prompt(0), "application/json")
    assert after.body == prompt(1) and gpu.connections == 2
