"""What a job is bound to a backend with: the room it takes there, shared
with other balancer replicas (Room), the step run before its prompt is
forwarded (BeforeDispatch), and the job so bound (Bound), which the
dispatcher forwards once (dispatch.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from balancer.backends.state import Backend
from balancer.jobs.fair import TurnCheck
from balancer.store import StoredJob


class BeforeDispatch(Protocol):
    """Runs after a backend is chosen and before the prompt is forwarded to it
    (for example: put the files the prompt references on that backend, and
    rename them in the prompt). Returns the request body to forward."""

    async def __call__(self, request: dict[str, Any], backend: Backend) -> dict[str, Any]: ...


class Room(Protocol):
    """Room on backends shared with other balancer replicas: a slot is taken
    before a prompt is sent (False: another replica holds every slot, or the
    shared store is unreachable; with `turn`, "again": the tenants' turn
    moved since it was read, and it moves with the slot taken) and given
    back when the send fails or the job leaves the backend."""

    async def take(
        self, backend: str, prompt_id: str, capacity: int, turn: TurnCheck | None = None
    ) -> bool | Literal["again"]: ...

    async def give_back(self, prompt_id: str) -> None: ...

    async def wants_room(self, waiting: bool) -> None:
        """A binding pass begins, with jobs `waiting` for room or not: only
        replicas with jobs waiting are told when a slot is given back."""
        ...

    async def passed(self, capacity: int) -> None:
        """The binding pass ended: a freed slot this replica was offered
        and did not take is offered to another replica waiting for room."""
        ...

    def known_full(self) -> frozenset[str]:
        """Backends a take would be refused on now, without asking."""
        ...


@dataclass(frozen=True)
class Bound:
    """A job bound to `backend` with its slot there (`shared`, None: no
    slot to give back): it counts on that backend and must be forwarded
    (Dispatcher.forward), once."""

    job: StoredJob
    backend: Backend
    shared: Room | None
