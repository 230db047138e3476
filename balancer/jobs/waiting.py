"""How many jobs wait in the balancer queue, for the pool-wide
`queue_remaining` every client socket and `GET /prompt` are told, and
`/balancer/status`.

Alone, a balancer's own queue is the pool's. With several replicas each
holds the jobs it accepted, so the count comes from the shared store (one
counter every replica reads): the same on every replica. A replica reads it
again after job events here (at most every MIN_GAP seconds: a burst of
events is one read) and every READ_EVERY seconds (another replica's jobs
move without telling it); until Redis answers again, sockets
keep the last count read, never a lower one than this replica's own queue
(an unread count is not an empty queue), and `GET /prompt` answers 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from balancer.jobs.events import JobEvent, JobEvents
from balancer.replicas.outage import Outage
from balancer.store import Store, StoreUnavailable

READ_EVERY = 0.5  # seconds
# Seconds between two reads at least: sockets are sent the count at most
# once a second (ws_status.STATUS_EVERY), so a read per job event was waste.
MIN_GAP = 0.1


class Waiting(Protocol):
    def __call__(self) -> int:
        """The count as last known, for the sockets' status frames."""
        ...

    async def read(self) -> int:
        """The count now; raises StoreUnavailable when it cannot be read."""
        ...


class LocalWaiting:
    """One balancer: its own queue is every waiting job."""

    def __init__(self, own: Callable[[], int]) -> None:
        self.own = own

    def __call__(self) -> int:
        return self.own()

    async def read(self) -> int:
        return self.own()


class SharedWaiting:
    """Several replicas: the store's count, pool-wide."""

    def __init__(self, store: Store, own: Callable[[], int], events: JobEvents) -> None:
        self.store = store
        self.own = own
        self._read = 0
        self._stale = asyncio.Event()
        events.subscribe(self)  # a job moved here: read again

    def __call__(self) -> int:
        return max(self._read, self.own())

    async def read(self) -> int:
        self._read = await self.store.count_waiting()
        return self()

    async def job_event(self, event: JobEvent) -> None:
        self._stale.set()

    async def run(self, changed: Callable[[], None]) -> None:
        """Read the count after job events here (MIN_GAP apart at least) and
        every READ_EVERY seconds, and call `changed` when it moved; until
        cancelled."""
        outage = Outage("waiting_count")
        while True:
            self._stale.clear()
            before = self()
            try:
                await self.read()
            except StoreUnavailable as exc:
                outage.failed(exc)
            else:
                outage.ok()
            if self() != before:
                changed()
            await asyncio.sleep(MIN_GAP)
            # asyncio.wait, not a timeout: nothing to suppress, so a cancel
            # that lands as the wait times out still stops the loop.
            woken = asyncio.ensure_future(self._stale.wait())
            try:
                await asyncio.wait([woken], timeout=READ_EVERY - MIN_GAP)
            finally:
                woken.cancel()
