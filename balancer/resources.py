"""What the app's lifespan opens before the composition root builds
anything, and closes after: the backends' HTTP session, the store, the
output sink and the webhooks' session."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import aiohttp
from prometheus_client import CollectorRegistry

from balancer.config.backend_settings import ProbeSettings
from balancer.config.settings import Settings
from balancer.http1.posts import KeptPosts
from balancer.outputs.setup import open_sink
from balancer.outputs.sink import OutputSink
from balancer.store import Store
from balancer.store.open import close_store, open_store
from balancer.webhooks.setup import webhook_session


@dataclass(frozen=True)
class Opened:
    """What the lifespan opened before anything is built, closed after."""

    http: aiohttp.ClientSession  # to the backends
    store: Store
    sink: OutputSink | None  # the completing step: outputs copied before a job ends
    hooks_http: aiohttp.ClientSession  # to clients' webhook receivers
    posts: KeptPosts | None = None  # small POSTs to the backends (balancer.upstream); None: aiohttp


# How much of a backend's answer may wait unread (twice this, then its socket
# is paused; aiohttp's default: 64 KiB): a chunked answer's pieces, or the
# first of a large /view before proxy/relay.py takes its connection over. Per
# streamed answer, so 100 slow downloads hold at most 50 MB.
READ_BUFFER = 256 * 1024


def keep_alive(probe: ProbeSettings) -> float:
    """How long an unused connection to a backend stays open: past the
    longest a backend goes unread by probe rounds (`idle_interval`, and the
    round that reads it may start up to two intervals and a timeout later),
    so each read reuses the last one's connection. aiohttp's default, 15 s,
    closed an idle backend's connection before its next read, and opening
    one was about a sixth of the balancer's CPU while probing 1,000
    backends. ComfyUI keeps one open 75 s; a backend that closed it first
    costs nothing more than before: aiohttp sends a GET again on a new one."""
    longest = max(probe.idle_interval, probe.channel_interval)
    return longest + 2 * probe.interval + probe.timeout


def make_session(settings: Settings) -> aiohttp.ClientSession:
    """One pooled session for all backends. It keeps no cookies (they would
    leak between clients), does not decode bodies (Content-Encoding passes
    through) and adds no Accept-Encoding the client did not send."""
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.timeouts.connect, sock_read=settings.timeouts.request
    )
    return aiohttp.ClientSession(
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        connector=aiohttp.TCPConnector(
            limit=0, limit_per_host=256, keepalive_timeout=keep_alive(settings.probe)
        ),
        read_bufsize=READ_BUFFER,
    )


async def open_resources(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    session: aiohttp.ClientSession | None,
    store: Store | None,
    metrics: CollectorRegistry,
) -> Opened:
    """Open what is not given, each closed by `stack` in reverse."""
    http = session
    if http is None:
        http = await stack.enter_async_context(make_session(settings))
    kept = store or open_store(settings)
    if store is None:
        stack.push_async_callback(close_store, kept)
    sink = await stack.enter_async_context(open_sink(settings.outputs, http, kept, metrics))
    hooks_http = await stack.enter_async_context(webhook_session())
    posts = KeptPosts(settings.timeouts.connect, keep_alive(settings.probe))
    stack.callback(posts.close)
    return Opened(http, kept, sink, hooks_http, posts)
