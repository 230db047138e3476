"""Job ends held back and run in the background (a completing step, such as
copying outputs elsewhere, can take long), so a channel goes on relaying
other events meanwhile: one end at a time per job. At shutdown the ends
still held are dropped; their jobs stay unfinished in the store, so the next
start ends (and completes) them again."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from balancer.logs import get_logger
from balancer.store import StoreUnavailable
from balancer.tasks import cancel_all

log = get_logger("balancer.jobs")


class HeldEnds:
    def __init__(self) -> None:
        self._ending: dict[str, asyncio.Task[None]] = {}

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._ending

    def hold(self, prompt_id: str, ending: Coroutine[Any, Any, Any]) -> None:
        """Run `ending` in the background unless this job's end runs already."""
        if prompt_id in self._ending:
            ending.close()
            return
        task = asyncio.ensure_future(self._run(prompt_id, ending))
        self._ending[prompt_id] = task
        task.add_done_callback(lambda _: self._ending.pop(prompt_id, None))

    async def _run(self, prompt_id: str, ending: Coroutine[Any, Any, Any]) -> None:
        """The store away: the job stays unfinished and a later probe ends it."""
        try:
            await ending
        except StoreUnavailable as exc:
            log.warning("job_end_deferred", prompt_id=prompt_id, error=str(exc))

    async def close(self) -> None:
        await cancel_all(self._ending.values())
