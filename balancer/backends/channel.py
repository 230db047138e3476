"""One WebSocket per backend: the balancer's channel to its events.

Prompts are dispatched with the channel's own `client_id`, so the backend
sends the channel every targeted event, which the layer above routes to the
client that owns the prompt. While a channel is down its backend takes no new
prompts. Each connection uses a fresh id (`<base>-<generation>`): ComfyUI
drops a reconnecting sid's registration when the old socket's close is handled
late, which could mute a reused id (comfyui-api.md 8.1). The base is random
per process start, so no other process ever connects under these ids but
one that adopts this one's jobs after its death (replicas/takeover.py); a
replica that learns another may hold its ids reconnects under fresh ones
(`renew`).

`Channels.answering` asks over the channels whether their backends still
answer: a WebSocket ping costs both ends a small fraction of an HTTP probe, so
the prober uses it for backends whose pushes already keep their load known
(`Prober.due`). A round sends every ping, then waits once for all the pongs:
one timer for the round, not a task, a shielded future and a timer per
backend (at 1,000 backends those were the prober's largest cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiohttp

from balancer.backends.state import Backend
from balancer.logs import get_logger
from balancer.tasks import stop

log = get_logger("balancer.channel")

# Sent first on every channel, so backends send type-4 previews with metadata
# (prompt_id inside) that the balancer can route and convert per client.
CHANNEL_FEATURES = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}

# The future of each ping sent, resolved by its pong, and whose channel it went over.
Pongs = dict[asyncio.Future[None], Backend]


class ChannelHandler(Protocol):
    """Called in the order the backend sent, one message at a time; a JSON
    message comes with the text it was parsed from."""

    async def on_json(
        self, backend: Backend, message: dict[str, Any], raw: str | None = None
    ) -> None: ...

    async def on_binary(self, backend: Backend, frame: bytes) -> None: ...

    def on_channel(self, backend: Backend, up: bool) -> None: ...


class Channel:
    def __init__(
        self,
        backend: Backend,
        session: aiohttp.ClientSession,
        handler: ChannelHandler,
        base_id: str,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.backend = backend
        self.session = session
        self.handler = handler
        self.base_id = base_id
        self.sleep = sleep
        self.generation = 0
        self.connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pong: asyncio.Future[None] | None = None  # the answer to the ping in flight
        self._renewed = False  # closed by `renew`

    async def run(self, max_backoff: float = 5.0) -> None:
        """Connect, relay, reconnect with exponential backoff; until cancelled."""
        backoff = 0.1
        while True:
            client_id = self.next_id()
            closing = False
            try:
                await self._session(client_id)
                backoff = 0.1
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("channel_error", backend=self.backend.name, error=type(exc).__name__)
            except asyncio.CancelledError:
                closing = True  # the balancer closes it (shutdown, removal): no warning
                raise
            finally:
                self._set_down(closing)
            if self._renewed:  # closed for a fresh id: reconnect at once
                self._renewed = False
                continue
            await self.sleep(backoff)
            backoff = min(max_backoff, backoff * 2)

    def next_id(self) -> str:
        """The client_id of the next connection: a fresh one each time."""
        self.generation += 1
        return f"{self.base_id}-{self.generation}"

    async def _session(self, client_id: str) -> None:
        url = f"{self.backend.url}/ws?clientId={client_id}"
        connect = self.session.ws_connect(url, heartbeat=30.0, autoping=False, max_msg_size=0)
        async with connect as ws:
            await ws.send_str(json.dumps(CHANNEL_FEATURES))
            self._ws = ws
            self._set_up(client_id)
            try:
                await self._read(ws)
            finally:
                self._ws = None
                if self._pong is not None:
                    self._pong.cancel()  # the channel closed: no answer comes

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self._text(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await self.handler.on_binary(self.backend, msg.data)
            elif msg.type == aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == aiohttp.WSMsgType.PONG:
                self._answered()

    def _answered(self) -> None:
        if self._pong is not None and not self._pong.done():
            self._pong.set_result(None)

    async def send_ping(self) -> asyncio.Future[None] | None:
        """Ping the backend over the channel (not again while a ping is
        unanswered); the future its pong resolves, cancelled if the channel
        closes first. None while the channel is down or the ping cannot be
        sent."""
        ws = self._ws
        if ws is None or ws.closed:
            return None
        if self._pong is None or self._pong.done():
            self._pong = asyncio.get_running_loop().create_future()
            try:
                await ws.ping()  # a control frame: written at once, never waits
            except (ConnectionError, RuntimeError):
                self._pong.cancel()
                return None
        return self._pong

    async def _text(self, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if isinstance(message, dict) and isinstance(message.get("type"), str):
            await self.handler.on_json(self.backend, message, raw)

    def _set_up(self, client_id: str) -> None:
        """The backend's channel is this connection now."""
        self.backend.channel_id = client_id
        self.connected.set()
        self.handler.on_channel(self.backend, True)
        log.info("channel_up", backend=self.backend.name, client_id=client_id)

    async def renew(self) -> None:
        """Close the connection and open the next one at once, under a fresh
        client_id; `connected` is then a new event, set once that one is up."""
        ws = self._ws
        if ws is not None:
            self._renewed = True
            self.connected = asyncio.Event()
            await ws.close()

    def _set_down(self, closing: bool) -> None:
        if self.backend.channel_id is not None:
            if closing:
                log.info("channel_closed", backend=self.backend.name)
            else:
                log.warning("channel_down", backend=self.backend.name)
            self.backend.channel_id = None
            self.connected.clear()
            self.handler.on_channel(self.backend, False)


class Channels:
    """A running Channel per backend, started and stopped with the registry."""

    def __init__(
        self, session: aiohttp.ClientSession, handler: ChannelHandler, base_id: str
    ) -> None:
        self.session = session
        self.handler = handler
        self.base_id = base_id
        self.channels: dict[str, Channel] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, backend: Backend) -> Channel:
        channel = Channel(backend, self.session, self.handler, f"{self.base_id}-{backend.name}")
        self.channels[backend.name] = channel
        self._tasks[backend.name] = asyncio.create_task(channel.run())
        return channel

    async def stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        self.channels.pop(name, None)
        if task is not None:
            with contextlib.suppress(Exception):  # it logged its own errors
                await stop(task)

    async def send_pings(self, backends: Sequence[Backend]) -> Pongs:
        """A ping over the channel of each of `backends` whose channel is up."""
        pongs: Pongs = {}
        for backend in backends:
            channel = self.channels.get(backend.name)
            pong = None if channel is None else await channel.send_ping()
            if pong is not None:
                pongs[pong] = backend
        return pongs

    async def answering(self, backends: Sequence[Backend], timeout: float) -> list[Backend]:
        """Those of `backends` whose channel answers a ping within `timeout`
        seconds: every ping is sent, then one wait for all the pongs."""
        pongs = await self.send_pings(backends)
        if pongs:
            await asyncio.wait(pongs, timeout=timeout)
        return answered(pongs)

    async def renew(self) -> None:
        """Every channel reconnects under a fresh client_id (another
        replica may have taken over the ones this balancer used), all at
        once: a backend slow to close does not hold the others back."""
        await asyncio.gather(*(channel.renew() for channel in list(self.channels.values())))

    async def close(self) -> None:
        for name in list(self._tasks):
            await self.stop(name)


def answered(pongs: Pongs) -> list[Backend]:
    """The backends whose pong came (not those whose channel closed first)."""
    return [backend for pong, backend in pongs.items() if pong.done() and not pong.cancelled()]
