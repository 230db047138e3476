"""Who follows each job, among balancer replicas sharing a store: a new job
is claimed before it is stored, so no stored unfinished job is ever without
an owner (replicas/owners.py keeps the claims)."""

from __future__ import annotations

from typing import Protocol

from balancer.store import Store, StoredJob


class Claims(Protocol):
    """A job is claimed before it is stored (False: a record is there
    already), a claim is confirmed when the store took the job as new anyway
    (the record was stale), and released when the job was not stored."""

    async def claim(self, prompt_id: str) -> bool: ...

    async def confirm(self, prompt_id: str) -> None: ...

    async def release(self, prompt_id: str) -> None: ...


async def create_claimed(
    store: Store, claims: Claims | None, job: StoredJob, max_unfinished: int | None
) -> bool:
    """Store a new job (False: its id is taken), claimed first if replicas
    share the store (`claims`; None: this balancer alone follows every job).
    OverQuota when its tenant already has `max_unfinished` unfinished jobs."""
    if claims is None:
        return await store.create(job, max_unfinished)
    claimed = await claims.claim(job.prompt_id)
    try:
        created = await store.create(job, max_unfinished)
    except BaseException:
        if claimed:
            await claims.release(job.prompt_id)
        raise
    if created and not claimed:
        await claims.confirm(job.prompt_id)
    elif claimed and not created:
        await claims.release(job.prompt_id)
    return created
