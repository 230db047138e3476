"""The one middleware every request passes through.

In order: the request's route class and start time; the request counted
in flight (a shutdown waits for it: `balancer.shutdown`); the gates (a browser on
another origin changes nothing, then a key or a session; credentials never go
further: `balancer.auth.gate`); the route's handler; anything raised below
answered in ComfyUI's error shape (`balancer.errors`); the time and status
recorded under the route class, refusals included (`balancer.ops.timing`).
CORS headers are added by the routes' own wrappers (`balancer.auth.setup`).

One layer instead of four: each aiohttp middleware is one more coroutine per
request, and a small GET answered from kept copies is mostly this path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from balancer.auth.gate import admit
from balancer.config.settings import Settings
from balancer.errors import too_large, unhandled
from balancer.ops.metrics import Metrics
from balancer.ops.timing import UNTIMED, route_class
from balancer.shutdown import InFlight

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_middleware(
    settings: Callable[[], Settings],
    metrics: Metrics,
    max_body: int,
    in_flight: InFlight,
    clock: Callable[[], float] = time.perf_counter,
) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = route_class(request)
        started = clock()
        status = 500  # cancelled before an answer
        try:
            with in_flight.request():  # a shutdown lets it finish until its deadline
                response = await answer(request, handler, settings(), max_body)
            status = response.status
            return response
        except web.HTTPException as exc:  # aiohttp sends it as it is
            status = exc.status
            raise
        finally:
            if kind not in UNTIMED:  # a socket's lifetime is not a latency
                metrics.request(kind, clock() - started, status)

    typed: Middleware = middleware
    return typed


async def answer(
    request: web.Request, handler: Handler, settings: Settings, max_body: int
) -> web.StreamResponse:
    """The gates' refusal, or the handler's answer; anything raised that is
    not an HTTP answer becomes a 503 (the store) or a 500, and a body over
    the limit a 413, in ComfyUI's error shape."""
    try:
        admitted = admit(request, settings)
        if isinstance(admitted, web.StreamResponse):
            return admitted
        return await handler(admitted)
    except web.HTTPRequestEntityTooLarge:
        return too_large(max_body)
    except web.HTTPException:
        raise
    except Exception as exc:
        return unhandled(request, exc)
