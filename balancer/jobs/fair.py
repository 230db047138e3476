"""The balancer queue shared fairly between API keys: one ComfyUI-ordered
`WaitingQueue` per tenant, and dispatch takes the next tenant in rotation
that has a job waiting. One tenant's flood therefore waits behind its own
jobs, not in front of everyone else's. Without keys there is one tenant
(None) and the order is exactly ComfyUI's.

The rotation goes through the tenants by name (None first), starting after
the tenant served last. So the order is a function of the waiting jobs as
the store keeps them and of that one name: a restarted balancer, which
starts the rotation afresh, rebuilds the same order up to whose turn it is.
Several replicas share that one name (balancer/replicas/turn.py): each
`follow`s it before choosing, so they take turns as one balancer does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from balancer.jobs.queue import WaitingQueue
from balancer.store import StoredJob

Tenant = str | None
Served = tuple[Tenant] | None  # the tenant served last, once one was


@dataclass(frozen=True)
class Move:
    """The turn moved from `since` to `to` by one binding (equal: it did not
    move). `head`: the job bound is the head of the rotation, so the binding
    holds only if the turn is still `since` as it is made (a job past the
    head neither checks nor moves it)."""

    since: Served
    to: Served
    head: bool = True


# Not bound in this turn: "again", another replica moved the turn since it
# was read (choose again); "wait", the tenant next in turn waits on another
# replica, which binds it (this pass ends).
NotNow = Literal["again", "wait"]
Taken = Move | Literal["wait"]
# How the shared room checks and moves the turn with a slot: (key, since, to).
TurnCheck = tuple[str, str, str]


class Turn(Protocol):
    """The turn shared with other replicas (none: this balancer's own).
    A move is made in the same step as the slot the job takes on its
    backend (binding.Room.take), so no other replica sees a turn moved for
    a job that did not get its slot; without shared slots, `commit`."""

    async def follow(self, queue: FairQueue) -> None:
        """Set `queue`'s rotation to start after the tenant served last pool-wide."""
        ...

    def take(self, queue: FairQueue, job: StoredJob) -> Taken:
        """The move binding `job` makes, or why not now."""
        ...

    def condition(self, move: Move) -> TurnCheck | None:
        """What the room checks and moves with the slot; None: nothing."""
        ...

    async def commit(self, move: Move) -> bool:
        """Make `move` on its own; False: the turn moved since it was read."""
        ...

    async def undo(self, move: Move) -> None:
        """`move`'s job was not sent after all: the turn back, unless it moved on."""
        ...


def tenant_key(tenant: Tenant) -> tuple[bool, str]:
    return (tenant is not None, tenant or "")


def rotation(tenants: Iterable[Tenant], served: Served) -> list[Tenant]:
    """`tenants` by name, the one after `served` first."""
    ordered = sorted(set(tenants), key=tenant_key)
    if served is None:
        return ordered
    last = tenant_key(served[0])
    after = [t for t in ordered if tenant_key(t) > last]
    return after + [t for t in ordered if tenant_key(t) <= last]


class FairQueue:
    """The `WaitingQueue` interface, round-robin across `StoredJob.tenant`."""

    def __init__(self) -> None:
        self._queues: dict[Tenant, WaitingQueue] = {}
        self._tenant_of: dict[str, Tenant] = {}
        self._last: Served = None

    def __len__(self) -> int:
        return len(self._tenant_of)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._tenant_of

    @property
    def served(self) -> Served:
        """The tenant served last: the rotation starts after it."""
        return self._last

    def follow(self, served: Served) -> None:
        """Start the rotation after `served` (another replica's turn moved)."""
        self._last = served

    def count(self, tenant: Tenant) -> int:
        queue = self._queues.get(tenant)
        return len(queue) if queue is not None else 0

    def __iter__(self) -> Iterator[StoredJob]:
        """Waiting jobs in dispatch order (the rotation, played forward)."""
        lists = [list(self._queues[t]) for t in self._rotation()]
        out: list[StoredJob] = []
        for depth in range(max(map(len, lists), default=0)):
            out += [jobs[depth] for jobs in lists if depth < len(jobs)]
        return iter(out)

    def _rotation(self) -> list[Tenant]:
        """Tenants with a job waiting, by name, the one after the last served first."""
        return rotation((t for t, q in self._queues.items() if len(q)), self._last)

    def get(self, prompt_id: str) -> StoredJob | None:
        if prompt_id not in self._tenant_of:
            return None
        return self._queues[self._tenant_of[prompt_id]].get(prompt_id)

    def push(self, job: StoredJob) -> None:
        self.remove(job.prompt_id)
        self._queues.setdefault(job.tenant, WaitingQueue()).push(job)
        self._tenant_of[job.prompt_id] = job.tenant

    def peek(self) -> StoredJob | None:
        rotation = self._rotation()
        return self._queues[rotation[0]].peek() if rotation else None

    def pop(self) -> StoredJob:
        rotation = self._rotation()
        if not rotation:
            raise IndexError("pop from an empty queue")
        self._last = (rotation[0],)
        job = self._queues[rotation[0]].pop()
        del self._tenant_of[job.prompt_id]
        return job

    def remove(self, prompt_id: str) -> StoredJob | None:
        if prompt_id not in self._tenant_of:
            return None
        return self._queues[self._tenant_of.pop(prompt_id)].remove(prompt_id)
