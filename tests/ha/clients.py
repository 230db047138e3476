"""The clients of the HA test: each picks a random replica per request (POST
on one, its socket on another, history polling on a third) and records what
it was told and what its socket received."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from support import colored

Urls = Callable[[], list[str]]
RETRY = 0.2  # seconds between tries of a request a replica did not answer
POLL = 0.5  # seconds between looks at a job's history
GIVE_UP = 300.0  # seconds a request is retried on other replicas


@dataclass
class Post:
    prompt_id: str
    sent: float
    answered: float
    number: float
    via: str  # the replica that answered it
    # Replicas that got it and never answered (their connection broke): one
    # of them may have accepted and sent it, and followed it, not `via`.
    unanswered: tuple[str, ...]


@dataclass
class Client:
    cid: str
    rng: random.Random
    posts: list[Post] = field(default_factory=list)
    done_at: dict[str, float] = field(default_factory=dict)
    frames: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    # Per job, the index (in `up`) of the socket each of its frames came on.
    sockets: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    up: list[list[float]] = field(default_factory=list)  # socket [opened, closed] times
    where: list[str] = field(default_factory=list)  # the replica each socket was on
    end_heard: dict[str, float] = field(default_factory=dict)  # when `executing` null came
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    heard: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self, session: aiohttp.ClientSession, urls: Urls) -> None:
        """Hold a socket on a random replica; another one when it closes."""
        while True:
            url = self.rng.choice(urls())
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.ws_connect(f"{url}/ws?clientId={self.cid}") as ws:
                    interval = [time.monotonic(), float("inf")]
                    self.up.append(interval)
                    self.where.append(url)
                    self.connected.set()
                    try:
                        async for msg in ws:
                            if msg.type == aiohttp.WSMsgType.TEXT:
                                self._frame(json.loads(msg.data))
                    finally:
                        interval[1] = time.monotonic()
                        self.connected.clear()
            await asyncio.sleep(RETRY)

    def _frame(self, frame: Any) -> None:
        data = frame.get("data") if isinstance(frame, dict) else None
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        if isinstance(prompt_id, str):
            self.frames[prompt_id].append(frame)
            self.sockets[prompt_id].append(len(self.up) - 1)
            if frame.get("type") == "executing" and data.get("node") is None:
                self.end_heard.setdefault(prompt_id, time.monotonic())
            self.heard.set()

    async def run(self, session: aiohttp.ClientSession, urls: Urls, count: int, seed: int) -> None:
        """Submit `count` prompts one after another, each once the last has
        ended (as its history on a random replica shows)."""
        for i in range(count):
            await self.connected.wait()  # a socket before the prompt, as the web UI does
            prompt_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
            workflow = colored(seed + i)
            body = {"prompt": workflow, "client_id": self.cid, "prompt_id": prompt_id}
            sent = time.monotonic()
            unanswered: list[str] = []
            via, answer = await _retried(
                session, urls, self.rng, "POST", "/prompt", body, unanswered
            )
            done = time.monotonic()
            self.posts.append(Post(prompt_id, sent, done, answer["number"], via, tuple(unanswered)))
            await self._until_done(session, urls, prompt_id)

    async def _until_done(self, session: aiohttp.ClientSession, urls: Urls, pid: str) -> None:
        while True:
            _, history = await _retried(session, urls, self.rng, "GET", f"/history/{pid}", None, [])
            if pid in history:
                self.done_at[pid] = time.monotonic()
                return
            await asyncio.sleep(POLL)

    def post(self, prompt_id: str) -> Post:
        return next(p for p in self.posts if p.prompt_id == prompt_id)

    def covered(self, prompt_id: str) -> bool:
        """Whether one socket was open from its submission until its end
        came, or still is: a socket that closed before (its replica was
        killed) loses the frames that replica had not written to it yet."""
        sent = self.post(prompt_id).sent
        end = self.end_heard.get(prompt_id, float("inf"))
        return any(opened <= sent and closed >= end for opened, closed in self.up)


async def _retried(
    session: aiohttp.ClientSession,
    urls: Urls,
    rng: random.Random,
    method: str,
    path: str,
    body: Any,
    unanswered: list[str],
) -> tuple[str, Any]:
    """A random replica and its JSON answer; one that is down or answers
    5xx is tried again on another (a client retrying through HAProxy).
    `unanswered` gets each replica whose connection broke once the request
    may have reached it (not one that refused the connection)."""
    deadline = time.monotonic() + GIVE_UP
    while True:
        url = rng.choice(urls())
        try:
            async with session.request(method, url + path, json=body) as resp:
                if resp.status < 500:
                    assert resp.status == 200, f"{method} {path}: {resp.status} {await resp.text()}"
                    return url, await resp.json()
        except aiohttp.ClientConnectorError:
            pass  # refused: it never got the request
        except (TimeoutError, aiohttp.ClientError, OSError):
            unanswered.append(url)
        assert time.monotonic() < deadline, f"{method} {path}: no replica answered"
        await asyncio.sleep(RETRY)


async def everything_heard(
    clients: list[Client], timeout: float, expected: Callable[[Client, str], bool]
) -> None:
    """Until the client of every job `expected` heard its end (its socket
    got `executing` null), or `timeout` seconds."""

    def missing() -> int:
        return sum(
            1
            for c in clients
            for p in c.posts
            if expected(c, p.prompt_id) and not _ended(c.frames[p.prompt_id])
        )

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while missing():
                waits = [asyncio.ensure_future(c.heard.wait()) for c in clients]
                for c in clients:
                    c.heard.clear()
                await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()


def _ended(frames: list[dict[str, Any]]) -> bool:
    return any(f["type"] == "executing" and f["data"].get("node") is None for f in frames)
