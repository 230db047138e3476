"""The store's records and the interface every store implements."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from balancer.store.kept import KeptHistory
from balancer.store.outbox import Owed

Wall = Callable[[], float]  # seconds since the epoch


@dataclass(frozen=True)
class Pin:
    """prompt_id -> the backend that owns it, and the first answer given.

    `digest` identifies the workflow so an identical retry gets `answer`
    again and a different workflow under the same id is refused.
    """

    prompt_id: str
    backend: str
    digest: str
    answer: bytes
    client_id: str | None = None
    tenant: str | None = None  # the API key (by name) that submitted it


# The life of a job (see balancer/jobs/states.py for the legal moves).
JobStateName = Literal[
    "waiting",  # in the balancer queue
    "dispatching",  # its POST /prompt to a backend is in flight
    "queued",  # accepted by a backend, not started
    "running",
    "recalling",  # a removal is being confirmed with its backend
    "succeeded",
    "failed",
    "interrupted",
    "cancelled",
]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "interrupted", "cancelled"})


@dataclass(frozen=True)
class StoredJob:
    """One accepted job: enough to dispatch it again after a backend or
    balancer crash, and to answer `/api/jobs` after it ended. `request` is the
    body to forward (the client's own client_id inside); `number` is the
    balancer's queue number, the one every answer shows."""

    prompt_id: str
    request: dict[str, Any]
    digest: str
    client_id: str | None
    number: float
    state: JobStateName = "waiting"
    backend: str | None = None
    attempts: int = 0
    submitted_at: float = 0.0  # wall-clock seconds
    answer: bytes = b""  # what POST /prompt answered
    tenant: str | None = None  # the API key (by name) that submitted it
    started_at: float | None = None  # wall-clock seconds
    ended_at: float | None = None  # wall-clock seconds
    # Backends that held it before (failover), and those whose late second
    # run ended after the job had already ended (a duplicate run).
    lost_from: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    # When its client was told its run's end (wall-clock seconds), written
    # before the end's first frame is relayed: that end is never told again,
    # and the job never runs again (lifecycle.py).
    told_at: float | None = None
    # The channel client_id its run on `backend` was sent with (the
    # sender's, `<base>-<backend>-<generation>`): where that backend sends
    # the run's events. A replica that adopts the job takes that id over.
    sent_as: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


class StoreUnavailable(RuntimeError):
    """The store cannot answer now (a shared store's server is unreachable).
    Any method may raise it; a failed read never answers empty or None
    instead (unknown is not idle). The app answers 503 `store_unavailable`."""


class OverQuota(Exception):
    """`create` refused a job: its tenant already has `max_unfinished`
    unfinished jobs (counted in the same atomic step as the write)."""


class Store(Protocol):
    """Pins, jobs, kept history and the `number` counter. Every call is a
    coroutine; an implementation must not block the event loop noticeably.
    Job state changes only through `create` and `transition`, each one atomic
    (a shared store implements them as one transaction). Any call may raise
    `StoreUnavailable`."""

    async def create(self, job: StoredJob, max_unfinished: int | None = None) -> bool:
        """Record a new job; False (and nothing written) if the id exists.
        With `max_unfinished`, raises OverQuota (nothing written) when the
        job's tenant has that many unfinished jobs already: the count and
        the write are one step, so replicas on one store share the cap."""
        ...

    async def transition(
        self,
        prompt_id: str,
        from_states: Collection[str],
        to_state: JobStateName,
        fields: Mapping[str, Any],
        owed: Owed | None = None,
    ) -> StoredJob | None:
        """Move a job from one of `from_states` to `to_state`, setting
        `fields`, in one atomic step; None (nothing written) when the job is
        unknown or in another state. `owed`: the webhook this move (an end)
        owes, put in the outbox in that same step."""
        ...

    async def discard(self, prompt_id: str) -> None:
        """Forget a job that was never accepted (its backend refused it)."""
        ...

    async def next_number(self) -> int:
        """The next value of the pool's `number` counter (kept across restarts)."""
        ...

    async def get_job(self, prompt_id: str) -> StoredJob | None: ...

    async def unfinished_jobs(self) -> list[StoredJob]:
        """Jobs not in a terminal state, by number."""
        ...

    async def jobs(self) -> list[StoredJob]:
        """Every job kept (unfinished, and the latest ended ones), by number."""
        ...

    async def jobs_on(self, backend: str) -> list[StoredJob]:
        """Unfinished jobs held by `backend`, by number."""
        ...

    async def count_unfinished(self, tenant: str | None) -> int:
        """How many unfinished jobs `tenant` has (admission counts them)."""
        ...

    async def count_waiting(self) -> int:
        """How many jobs wait in the balancer queue, every replica's."""
        ...

    async def get_pin(self, prompt_id: str) -> Pin | None: ...

    async def job_and_pin(self, prompt_id: str) -> tuple[StoredJob | None, Pin | None]:
        """`get_job` and `get_pin` of one id (a shared store: one round trip)."""
        ...

    async def put_pin(self, pin: Pin) -> None: ...

    async def remove_pin(self, prompt_id: str) -> None: ...

    async def pins_of(self, backend: str) -> list[Pin]: ...

    async def put_history(self, prompt_id: str, entry: Any) -> None: ...

    async def get_history(self, prompt_id: str) -> Any | None: ...

    async def remove_history(self, prompt_id: str) -> None: ...

    async def histories(self) -> KeptHistory:
        """The kept entries in time order, for reading only: a local store
        may return its live index, a shared store its own copy, caught up with
        every replica's changes on each call."""
        ...

    async def claim_owed(
        self, holder: str, now: float, until: float, mine: bool = False
    ) -> list[Owed]:
        """The owed webhooks whose hold lapsed by `now` (and, `mine`, those
        held under `holder`'s name), each now held by `holder` until
        `until`, in one atomic step: of two senders claiming at once, one
        gets each (outbox.py)."""
        ...

    async def hold_owed(self, key: str, holder: str, until: float) -> bool:
        """Hold an owed webhook until `until`; False (nothing written) when
        it is gone or no longer `holder`'s."""
        ...

    async def settle_owed(self, key: str) -> None:
        """Delivered, or given up on: no longer owed."""
        ...

    async def count_owed(self) -> int:
        """How many webhooks are owed (in the outbox: not delivered nor
        given up on yet), every sender's."""
        ...
