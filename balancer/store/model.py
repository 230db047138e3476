"""The store's records and the interface every store implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from balancer.store.kept import KeptHistory


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


JobStateName = Literal["queued", "dispatched"]


@dataclass(frozen=True)
class StoredJob:
    """An accepted job that has not ended: enough to dispatch it again after
    a backend or balancer crash. `request` is the body to forward (the
    client's own client_id inside); `number` orders the balancer queue."""

    prompt_id: str
    request: dict[str, Any]
    digest: str
    client_id: str | None
    number: float
    state: JobStateName = "queued"
    backend: str | None = None
    attempts: int = 0
    submitted_at: float = 0.0  # wall-clock seconds
    answer: bytes = b""  # what POST /prompt answered
    tenant: str | None = None  # the API key (by name) that submitted it


class Store(Protocol):
    """Pins, unfinished jobs and kept history. Calls are synchronous and
    short: an implementation must not block the event loop noticeably."""

    def put_job(self, job: StoredJob) -> None: ...

    def get_job(self, prompt_id: str) -> StoredJob | None: ...

    def remove_job(self, prompt_id: str) -> None: ...

    def unfinished_jobs(self) -> list[StoredJob]: ...

    def get_pin(self, prompt_id: str) -> Pin | None: ...

    def put_pin(self, pin: Pin) -> None: ...

    def remove_pin(self, prompt_id: str) -> None: ...

    def pins_of(self, backend: str) -> list[Pin]: ...

    def put_history(self, prompt_id: str, entry: Any) -> None: ...

    def get_history(self, prompt_id: str) -> Any | None: ...

    def remove_history(self, prompt_id: str) -> None: ...

    def histories(self) -> KeptHistory:
        """The kept entries in time order; read it, never write it."""
        ...
