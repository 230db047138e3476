"""What POST /prompt is given and what it gives back, as plain values (the
proxy turns a result into HTTP): who submits with what limits, and the
answer or the refusal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from balancer.jobs.numbers import display_number
from balancer.jobs.send_results import Refused


class Allowance(Protocol):
    """A key's prompt rate: taken as the last admission rule, and given back
    by a prompt that is then not recorded (its id taken meanwhile, its key
    at its cap), so only an admitted prompt spends one."""

    async def take(self) -> float | None:
        """Take one prompt's allowance: None, or seconds until there is one."""

    async def give_back(self) -> None: ...


@dataclass(frozen=True)
class Quota:
    """Who submits, how many unfinished jobs that key may have, and its rate
    (None: no limit)."""

    tenant: str | None = None
    max_queued: int | None = None
    rate: Allowance | None = None


@dataclass(frozen=True)
class Submitted:
    """Accepted: the answer to give (prompt_id, number, node_errors).
    `fresh`: this submission recorded the job (not an answer given again
    to a retry of an id already accepted)."""

    prompt_id: str
    body: bytes
    fresh: bool = False


@dataclass(frozen=True)
class Refusal:
    """Not accepted, by the balancer: an error in ComfyUI's shape."""

    status: int
    type: str
    message: str
    details: str = ""
    retry_after: int | None = None


SubmitResult = Submitted | Refused | Refusal


def queued_answer(prompt_id: str, number: float) -> bytes:
    """The answer for a prompt that waits in the balancer: ComfyUI's shape,
    with the pool's number."""
    body: dict[str, Any] = {
        "prompt_id": prompt_id,
        "number": display_number(number),
        "node_errors": {},
    }
    return json.dumps(body).encode()
