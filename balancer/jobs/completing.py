"""A step that runs when a job has finished on its backend and before the
balancer announces its end (the client's `executing` null, the job event that
drives webhooks, `status.completed` in kept history). The output sink is one:
it holds the end until the job's files are safe in object storage."""

from __future__ import annotations

from typing import Any, Protocol


class CompletingStep(Protocol):
    async def complete(self, prompt_id: str, backend_url: str, entry: Any) -> Any:
        """The history entry to keep; may take as long as the step needs."""
        ...
