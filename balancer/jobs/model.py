"""A job as the balancer tracks it, from acceptance to its end."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    DISPATCHED = "dispatched"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.INTERRUPTED)


# The history status message that ends a run, and the state it means.
END_MESSAGES = {
    "execution_success": JobState.DONE,
    "execution_error": JobState.FAILED,
    "execution_interrupted": JobState.INTERRUPTED,
}


@dataclass
class Job:
    prompt_id: str
    backend: str
    client_id: str | None  # the client's own id, never the balancer's channel id
    submitted_at: float
    dispatched_at: float
    state: JobState = JobState.DISPATCHED
    started_at: float | None = None
    finished_at: float | None = None
    node: str | None = None  # the node running now, for a reconnecting client

    @property
    def queue_wait(self) -> float | None:
        return None if self.started_at is None else self.started_at - self.submitted_at

    @property
    def run_time(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def end_state(entry: Any) -> JobState:
    """What a history entry says about how its run ended."""
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, list) and message and message[0] in END_MESSAGES:
            return END_MESSAGES[message[0]]
    ok = isinstance(status, dict) and status.get("status_str") == "success"
    return JobState.DONE if ok else JobState.FAILED
