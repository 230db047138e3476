"""Running aiohttp apps on sockets until a stop signal, with aiohttp's own
graceful shutdown (stop accepting, finish in-flight requests up to a timeout,
then close connections and run cleanup)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from balancer.connguard import ConnectionLimits, GuardedSite

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed (it is a dependency on
    Linux and macOS): it roughly halves the event loop's cost per proxied
    request. Falls back to the standard loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class ListenError(Exception):
    """The address cannot be listened on; the message is one line for the operator."""

    def __init__(self, message: str, in_use: bool) -> None:
        super().__init__(message)
        self.in_use = in_use


def _open(family: int, address: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address of `host` (port 0: one free port
    for all), bound before anything else starts so a taken port fails at
    once. Raises ListenError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}: {exc.strerror}", in_use=False) from None
    sockets: list[socket.socket] = []
    try:
        for family, _, _, _, address in dict.fromkeys(infos):
            if sockets and port == 0:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sockets.append(_open(family, address))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} is in use (another ComfyUI or balancer?); use --port"
            raise ListenError(message, in_use=True) from None
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}", in_use=False) from None
    return sockets


@dataclass
class Running:
    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


async def start(
    app: web.Application, host: str, port: int, shutdown_timeout: float = 10.0
) -> Running:
    """Serve `app`; port 0 picks a free port, reported in the result."""
    return await serve_on(app, host, bind(host, port), shutdown_timeout)


async def start_guarded(
    app: web.Application, host: str, port: int, limits: ConnectionLimits
) -> Running:
    """`start` with every connection behind `limits`."""
    return await serve_on(app, host, bind(host, port), limits=limits)


async def serve_on(
    app: web.Application,
    host: str,
    sockets: Sequence[socket.socket],
    shutdown_timeout: float = 10.0,
    limits: ConnectionLimits | None = None,
) -> Running:
    """Serve `app` on sockets from `bind`; the app starts only now. With
    `limits`, every connection is behind them (`balancer.connguard`), and an
    idle keep-alive connection closes after 75 s (aiohttp's run_app default)."""
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=shutdown_timeout, keepalive_timeout=75.0
    )
    await runner.setup()
    for sock in sockets:
        site = web.SockSite(runner, sock) if limits is None else GuardedSite(runner, sock, limits)
        await site.start()
    return Running(runner, host, sockets[0].getsockname()[1])


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set on SIGINT or SIGTERM, through the loop's own handlers,
    installed for the block (also when the process inherited SIGINT ignored)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def wait_for_stop() -> None:
    """Return on SIGINT or SIGTERM."""
    with stop_signals() as stop:
        await stop.wait()


async def stop_all(running: list[Running]) -> None:
    for item in reversed(running):
        await item.runner.cleanup()
