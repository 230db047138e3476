"""The legal moves of a job, in one table.

    waiting -> dispatching -> queued -> running -> succeeded | failed | interrupted
    waiting | queued -> cancelled (a removal; queued through `recalling`)
    dispatching | queued | running -> waiting (lost: dispatched again)

`recalling` holds a job while its backend confirms a removal, so nothing
else (a probe that misses it, failover) decides its fate meanwhile.
"""

from __future__ import annotations

from typing import Final

from balancer.store.model import JobStateName

# Everything that holds a backend run: a probe or a channel may end these.
ON_BACKEND: Final = ("queued", "running", "recalling")
UNFINISHED: Final = ("waiting", "dispatching", *ON_BACKEND)

# to-state -> the states it may come from
FROM: Final[dict[JobStateName, tuple[JobStateName, ...]]] = {
    "dispatching": ("waiting", "dispatching"),
    "queued": ("dispatching", "recalling"),
    "running": ("queued", "recalling"),
    "waiting": ("dispatching", *ON_BACKEND),
    "recalling": ("queued",),
    "cancelled": ("waiting", "recalling"),
    "succeeded": ON_BACKEND,
    "interrupted": ON_BACKEND,
    "failed": UNFINISHED,
}


def legal(from_state: str, to_state: JobStateName) -> bool:
    return from_state in FROM[to_state]
