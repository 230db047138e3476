"""Test helpers: workflows, a fake clock and the Pool of in-process backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Middleware
from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from store_support import Outage

from balancer.app import create_app
from balancer.config.server_settings import TimeoutSettings
from balancer.emulator import Emulator
from balancer.emulator.faults import Handler
from balancer.proxy.context import BALANCER
from balancer.state import Balancer
from balancer.store import Store

FIXTURES = Path(__file__).parent / "fixtures"

# Debian's chromium, driven by playwright (never a downloaded browser). Without
# the background-networking flags it keeps trying hosts this machine cannot reach.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "workflows" / f"{name}.json").read_text())
    return data


def colored(color: int, prefix: str = "lb") -> dict[str, Any]:
    """fast.json with a chosen colour: each job's output pixels say whose it is."""
    wf = workflow("fast")
    wf["1"]["inputs"]["color"] = color
    wf["3"]["inputs"]["filename_prefix"] = prefix
    return wf


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def spend(self, seconds: float) -> None:
        """Simulated work on this clock: time passes at once, then other tasks run."""
        self.advance(seconds)
        await asyncio.sleep(0)


# How long a test waits for what must happen (an event, a job's end, a
# connection to an in-process server): it only bounds a hang. A loaded CI
# machine stalls a test process for seconds (7 s seen), and a stall past a
# bound fails a test that would have passed.
HANG_BOUND = 60.0

# The balancer's one wall-clock bound the injected deadline (Stalls) does not
# cover: its session's connect timeout (5 s by default). An in-process backend
# accepts at once, but a connect started before a stall longer than the
# timeout fails when the loop wakes up (the timer fires before the connect's
# result is read), and a probe that fails so leaves a backend down.
PATIENT = TimeoutSettings(connect=HANG_BOUND)


# aiohttp_client: an app started on a test server, and a client to it.
StartClient = Callable[[web.Application], Awaitable[TestClient]]  # type: ignore[type-arg]


@dataclass
class Stalls:
    """The balancer's deadlines in tests (`create_app(deadline=...)`): no call
    times out on the wall clock, however loaded the machine; a call to a
    stalled backend times out at once, as it would once its timeout passed.
    So a test, not the machine's load, decides which calls time out."""

    urls: set[str] = field(default_factory=set)
    watched: dict[str, list[asyncio.Timeout]] = field(default_factory=dict)
    killed: bool = False  # its balancer was killed: no call leaves it any more

    def __call__(self, url: str, seconds: float) -> AbstractAsyncContextManager[object]:
        if self.killed:
            return never_sent()
        stalled = any(url.startswith(f"{base}/") for base in self.urls)
        timeout = asyncio.timeout_at(asyncio.get_running_loop().time() if stalled else None)
        self.watched.get(url, []).append(timeout)
        return timeout

    def deadlines(self, url: str) -> list[asyncio.Timeout]:
        """The deadlines of the calls to `url` from now on, as they are made:
        a test ends a call in flight with `reschedule(loop.time())`."""
        return self.watched.setdefault(url, [])


class HeldAnswer:
    """Emulator middleware (`make_pool(middlewares=...)`): once armed, the
    answer to the next `method` `path` request is held after the backend
    served it (a prompt is queued, a history entry read), until released.
    A backend that did the work whose answer the balancer never gets.
    `before`: the request is held before the backend serves it (it has not
    seen it yet); `served` is then set when it arrives."""

    def __init__(self, method: str, path: str, before: bool = False) -> None:
        self.method, self.path = method, path
        self.before = before
        self.armed = False
        self.served = asyncio.Event()  # the held request was served (arrived, `before`)
        self.release = asyncio.Event()

    def middleware(self) -> Middleware:
        @web.middleware
        async def hold(request: web.Request, handler: Handler) -> web.StreamResponse:
            held = self.armed and (request.method, request.path) == (self.method, self.path)
            if held:
                self.armed = False  # one request only: a second one is answered
            if held and self.before:
                self.served.set()
                await self.release.wait()
            response = await handler(request)
            if held and not self.before:
                self.served.set()
                await self.release.wait()
            return response

        return hold


@contextlib.asynccontextmanager
async def never_sent() -> AsyncIterator[None]:
    """A call that times out before anything is sent (an expired timeout
    could still let a request out before it fires)."""
    raise TimeoutError("the balancer was killed")
    yield


@dataclass
class Pool:
    client: TestClient  # type: ignore[type-arg]
    emulators: dict[str, Emulator]
    servers: dict[str, TestServer]
    clock: FakeClock
    stalls: Stalls
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def balancer(self) -> Balancer:
        return self.client.app[BALANCER]  # type: ignore[index]

    def hang(self, name: str, hung: bool = True) -> None:
        """`name` stops answering HTTP (its event channel still speaks), and
        the balancer's calls to it time out; `hung=False` undoes both."""
        self.emulators[name].faults.hang = hung
        url = str(self.servers[name].make_url("")).rstrip("/")
        if hung:
            self.stalls.urls.add(url)
        else:
            self.stalls.urls.discard(url)

    def kill(self, name: str) -> None:
        """`name` dies like a killed process: its connections reset and its
        sockets close (its queue stays, as a paused emulator's would)."""
        emulator = self.emulators[name]
        emulator.faults.drop_connections = True
        emulator.hub.abort_all()

    async def channels_up(self, names: list[str], timeout: float = HANG_BOUND) -> None:
        """Wait until the balancer's event channel to each backend is open (a
        reconnect backs off up to 5 s; `timeout` only bounds a hang)."""
        channels = self.balancer.channels.channels
        for name in names:
            await asyncio.wait_for(channels[name].connected.wait(), timeout)

    async def restarted(
        self, start: StartClient, reopen: Callable[[], Awaitable[Store]], killed: bool = False
    ) -> Pool:
        """This balancer stopped, then a new one with its settings and clock
        started on the same data (`reopen` closes the store the old app was
        given and opens it again), in front of the same running backends.
        `killed`: it stops as a killed process would (its store must be an
        Outage): nothing it does from now on reaches the store or a backend
        (each store call is atomic, so a kill falls between two), and only
        then are its remains torn down."""
        settings = self.balancer.settings
        if killed:
            self.stalls.killed = True
            store = self.balancer.store
            assert isinstance(store, Outage), "only an Outage store can die with its balancer"
            store.down = True
        await self.client.close()
        stalls = Stalls(set(self.stalls.urls))
        app = create_app(
            settings,
            clock=self.clock,
            wall_clock=self.clock,
            run_prober=False,
            store=Outage(await reopen()),
            deadline=stalls,
        )
        again = Pool(await start(app), self.emulators, self.servers, self.clock, stalls)
        await again.channels_up(list(self.emulators))
        await again.probe()
        return again

    async def probe(self) -> None:
        """One probe round, a moment after whatever the test did last, and
        the catalogue reads it started."""
        self.clock.advance(0.001)
        await self.balancer.prober.probe_all()
        await self.balancer.catalogue_reader.settled()

    async def bind(self) -> None:
        """One pass of the late binder, and the sends it started."""
        await self.balancer.binder.pump()
        await self.balancer.binder.forwards.settled()

    async def submit(self, prompt: dict[str, Any], **extra: Any) -> dict[str, Any]:
        resp = await self.client.post("/prompt", json={"prompt": prompt, **extra})
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def owner(self, prompt_id: str) -> str:
        pin = await self.balancer.store.get_pin(prompt_id)
        assert pin is not None
        return pin.backend

    async def done(self, prompt_id: str, timeout: float = HANG_BOUND) -> None:
        """Wait until the balancer has ended this job (it keeps its history)."""
        ended = asyncio.Event()
        store = self.balancer.store

        class Watch:
            async def job_event(self, event: Any) -> None:
                if event.prompt_id == prompt_id and await store.get_history(prompt_id) is not None:
                    ended.set()

        self.balancer.events.subscribe(Watch())
        if await store.get_history(prompt_id) is None:
            await asyncio.wait_for(ended.wait(), timeout)

    def watch(self, phase: str, prompt_id: str) -> asyncio.Event:
        """An event set when `prompt_id` next reaches `phase` (subscribe first, then act)."""
        seen = asyncio.Event()

        class Watch:
            async def job_event(self, event: Any) -> None:
                if event.phase == phase and event.prompt_id == prompt_id:
                    seen.set()

        self.balancer.events.subscribe(Watch())
        return seen

    async def settle(self, prompt_ids: list[str], timeout: float = HANG_BOUND) -> None:
        """Probe (as the prober would) until every job has ended, waking on
        each job event; fail with the missing ids after `timeout`."""
        events: asyncio.Queue[Any] = asyncio.Queue()

        class Watch:
            async def job_event(self, event: Any) -> None:
                events.put_nowait(event)

        self.balancer.events.subscribe(Watch())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while missing := [
            i for i in prompt_ids if await self.balancer.store.get_history(i) is None
        ]:
            assert loop.time() < deadline, f"{len(missing)} jobs never ended: {missing[:5]}"
            await self.probe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(events.get(), 0.05)

    async def wait_idle(self, timeout: float = HANG_BOUND) -> None:
        for emulator in self.emulators.values():
            await emulator.wait_idle(timeout)


PoolFactory = Callable[..., Awaitable[Pool]]


async def run_stateful(machine: type[RuleBasedStateMachine], steps: int) -> None:
    """Run a hypothesis state machine from an async test: 25 examples from
    seed 0 (no example database), in a thread so its rules can drive this
    test's event loop. A fixed seed, not `derandomize`: that one seeds from
    the machine's source text, so an edited comment would change every
    example. For a local hunt, `STATEFUL_SEED=<n>` runs other examples,
    printing every step and not shrinking (the pool lives across examples,
    so a shrunk replay would not reproduce); CI runs seed 0."""
    hunt: dict[str, Any] = {}
    if (chosen := os.environ.get("STATEFUL_SEED")) is not None:
        hunt = {"verbosity": Verbosity.debug, "phases": (Phase.generate,)}
    config = settings(
        **hunt,
        max_examples=25,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    seeded = seed(int(chosen or 0))(machine)
    await asyncio.to_thread(run_state_machine_as_test, seeded, settings=config)
