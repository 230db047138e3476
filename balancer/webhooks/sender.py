"""Delivers the webhooks job ends owe, from the store's outbox (owing.py
makes them, store/outbox.py keeps them), in the background: a job's end
never waits for its webhook.

The end's own event starts its delivery here (the move that wrote it holds
it under this process's name). Each delivery is retried with exponential
backoff up to `webhooks.max_attempts`, the hold renewed before each wait;
the entry goes once a receiver took it (2xx) or the last attempt failed
(`webhook_gave_up`). Deliveries in flight are bounded; beyond the bound an
entry waits in the outbox until one ends (`sweep`). A sweep also takes the
entries whose hold lapsed: at start (with those held under this name, a
former process's) and, with several replicas, every few seconds, so a dead
replica's webhooks are sent by another. At shutdown a delivery cut by the
deadline stays owed: sent after a restart (`webhook_kept`), unless the
store is the process's memory (`webhook_undelivered`: lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from balancer.backends.state import Clock
from balancer.config.delivery_settings import WebhookSettings
from balancer.jobs.events import JobEvent
from balancer.logs import get_logger
from balancer.store import Store, StoreUnavailable
from balancer.store.outbox import Owed
from balancer.tasks import stop
from balancer.webhooks import event as payload
from balancer.webhooks.owing import ENDS, Owing, hold_for

log = get_logger("balancer.webhooks")

MAX_IN_FLIGHT = 256
IDEMPOTENCY_HEADER = "Idempotency-Key"
SWEEP_EVERY = 2.0  # seconds between sweeps, with several replicas
REFILL = "refill"  # the key of the sweep for webhooks waiting for room (`tasks`)
Sleep = Callable[[float], Awaitable[None]]


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1, 2, ...)."""
    return 0.5 * 2.0 ** (attempt - 1)


class Webhooks:
    """`durable`: the outbox outlives this process (SQLite, Redis)."""

    def __init__(
        self,
        settings: Callable[[], WebhookSettings],
        store: Store,
        session: aiohttp.ClientSession,
        owing: Owing,
        wall: Clock,
        durable: bool,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.store = store
        self.session = session
        self.owing = owing
        self.holder = owing.holder
        self.wall = wall
        self.durable = durable
        self.sleep = sleep
        self.tasks: dict[str, asyncio.Task[None]] = {}  # by the entry's key
        self._waiting: dict[str, str] = {}  # key -> prompt_id: owed, past the bound
        self._closing = False  # shutdown: no delivery starts any more

    def note(self, prompt_id: str, url: str | None, base_url: str) -> None:
        self.owing.note(prompt_id, url, base_url)

    async def job_event(self, event: JobEvent) -> None:
        if event.phase in ENDS:
            self.owing.forget(event.prompt_id)
        if event.owed is not None:
            self._start(event.owed)

    async def sweep(self, mine: bool = False) -> int:
        """Take the entries whose hold lapsed (and, `mine`, those held under
        this name) and deliver them; how many were taken. Raises
        StoreUnavailable."""
        return len(await self._claim(mine))

    async def _claim(self, mine: bool) -> list[Owed]:
        now = self.wall()
        until = now + hold_for(self.settings(), 0.0)
        taken = await self.store.claim_owed(self.holder, now, until, mine)
        for owed in taken:
            self._start(owed)
        return taken

    async def keep(self, sleep: Sleep) -> None:
        """Sweep every SWEEP_EVERY seconds until cancelled (several replicas:
        another one's lapsed holds are taken here)."""
        while True:
            try:
                await self.sweep()
            except StoreUnavailable as exc:
                log.warning("webhook_sweep_failed", error=str(exc))
            await sleep(SWEEP_EVERY)

    def _start(self, owed: Owed) -> None:
        if owed.key in self.tasks:
            self._waiting.pop(owed.key, None)
            return
        if self._in_flight() >= MAX_IN_FLIGHT or self._closing:
            log.info("webhook_waiting", prompt_id=owed.prompt_id, in_flight=self._in_flight())
            self._waiting[owed.key] = owed.prompt_id
            return
        self._waiting.pop(owed.key, None)
        task = asyncio.get_running_loop().create_task(self._send(owed))
        self.tasks[owed.key] = task
        task.add_done_callback(lambda _: self._done(owed.key))

    def _done(self, key: str) -> None:
        """A delivery ended: there is room for one waiting in the outbox."""
        self.tasks.pop(key, None)
        room = self._in_flight() < MAX_IN_FLIGHT
        if self._waiting and room and not self._closing and REFILL not in self.tasks:
            task = asyncio.get_running_loop().create_task(self._refill())
            self.tasks[REFILL] = task
            task.add_done_callback(lambda _: self.tasks.pop(REFILL, None))

    def _in_flight(self) -> int:
        """Deliveries under way (a refill is no delivery)."""
        return len(self.tasks) - (REFILL in self.tasks)

    async def _refill(self) -> None:
        """The webhooks waiting for room, taken again (one sweep at a time;
        one another replica took meanwhile is not this one's to wait for)."""
        asked = set(self._waiting)
        try:
            taken = {owed.key for owed in await self._claim(mine=True)}
            for key in asked - taken:
                self._waiting.pop(key, None)
        except StoreUnavailable as exc:
            log.warning("webhook_sweep_failed", error=str(exc))

    async def _send(self, owed: Owed) -> None:
        await self.deliver(owed)

    async def deliver(self, owed: Owed) -> bool:
        """True once a receiver took it; False when it was given up on, or
        left to another sender (its hold lost, or the store away)."""
        try:
            return await self._attempts(owed)
        except asyncio.CancelledError:  # shutdown's deadline
            self._left(owed.prompt_id, "cut at shutdown")
            raise
        except StoreUnavailable as exc:  # its hold lapses: a sweep takes it again
            log.warning("webhook_deferred", prompt_id=owed.prompt_id, error=str(exc))
            return False

    async def _attempts(self, owed: Owed) -> bool:
        settings = self.settings()
        headers = {
            "Content-Type": "application/json",
            payload.SIGNATURE_HEADER: payload.sign(settings.secret or "", owed.body),
            IDEMPOTENCY_HEADER: owed.key,
        }
        timeout = aiohttp.ClientTimeout(total=settings.timeout)
        for attempt in range(1, settings.max_attempts + 1):
            problem = await self._post(owed, headers, timeout)
            if problem is None:
                await self.store.settle_owed(owed.key)
                log.info("webhook_sent", prompt_id=owed.prompt_id, attempt=attempt)
                return True
            log.warning("webhook_failed", prompt_id=owed.prompt_id, attempt=attempt, error=problem)
            if attempt == settings.max_attempts:
                break
            gap = backoff(attempt)
            until = self.wall() + hold_for(settings, gap)
            if not await self.store.hold_owed(owed.key, self.holder, until):
                log.warning("webhook_taken", prompt_id=owed.prompt_id, attempt=attempt)
                return False
            await self.sleep(gap)
        await self.store.settle_owed(owed.key)
        log.warning("webhook_gave_up", prompt_id=owed.prompt_id, attempts=settings.max_attempts)
        return False

    async def _post(
        self, owed: Owed, headers: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> str | None:
        try:
            async with self.session.post(
                owed.url, data=owed.body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                return None if 200 <= resp.status < 300 else f"status {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests; shutdown, until its
        deadline: cancelling this wait leaves the deliveries to `close`)."""
        while self.tasks:
            await asyncio.wait(list(self.tasks.values()))

    async def close(self) -> None:
        """Shutdown, after `drain`: the deliveries still in flight are cut
        (`stop`: a cancel a store call swallowed is repeated), and they and
        the webhooks waiting for room stay owed in a durable outbox, or are
        lost with a memory one (each logged)."""
        self._closing = True
        for task in list(self.tasks.values()):
            await stop(task)
        for prompt_id in self._waiting.values():
            self._left(prompt_id, "waiting at shutdown")

    def _left(self, prompt_id: str, reason: str) -> None:
        """Not delivered by this process, which stops."""
        if self.durable:
            log.info("webhook_kept", prompt_id=prompt_id, reason=reason)
        else:
            log.warning("webhook_undelivered", prompt_id=prompt_id, reason=reason)
