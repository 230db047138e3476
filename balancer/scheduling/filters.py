"""Filters: which backends may take a prompt at all.

Each is a pure predicate with the outcome name the picker reports when it
removes the last candidate (a 503's reason, later a metric label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from balancer.scheduling.candidate import Candidate


@dataclass(frozen=True)
class Filter:
    outcome: str
    message: str
    keep: Callable[[Candidate], bool]
    # The filters after it judge only the backends it kept, so their outcomes
    # name that set (`capable_all_down`).
    narrows: str = ""


def is_capable(c: Candidate) -> bool:
    """Has every node class of the prompt and every literal combo value it
    uses (checkpoint, LoRA, sampler, ...), by the backend's last catalogue.
    Trade-off: a catalogue is read at most every `catalog.refresh` (and on
    reconnect), so a model copied onto a backend is used only after the next
    read (or an admin refresh); a backend never read is skipped (unknown is
    not capable) rather than risk ComfyUI's `value_not_in_list`."""
    return c.capable


CAPABLE = Filter(
    "not_capable",
    "no backend is known to offer every node and model of this prompt",
    is_capable,
    narrows="capable",
)


def is_up(c: Candidate) -> bool:
    """Healthy by the prober's thresholds, and its event channel is open (a
    prompt sent without a channel would run with nobody told of its events).
    Trade-off: a backend that just died may still pass for up to
    `unhealthy_after` probe intervals, unless its channel closed first; a
    failed dispatch marks it down at once to close that gap."""
    return c.healthy and c.channel_up


def not_draining(c: Candidate) -> bool:
    """Not drained for any reason (VRAM over its limit, an operator, the file,
    removal). Trade-off: a drained backend sits idle even when every other
    backend is backed up; running out of VRAM mid-job or ignoring an operator
    costs more than the wait, and pinned follow-ups still reach it."""
    return not c.draining


def has_fresh_load(c: Candidate) -> bool:
    """Load data younger than `probe.stale_after`. Unknown is never idle: a
    backend we cannot see is skipped even if it is probably fine, because
    sending work blind can queue it behind minutes of someone else's jobs."""
    return c.fresh and c.load is not None


def has_free_vram(c: Candidate) -> bool:
    """Free VRAM >= the backend's `min_free_vram`. With no requirement set any
    backend passes, including one that reports no VRAM figures; with one set,
    missing figures fail (unknown is not free)."""
    if c.min_free_vram <= 0:
        return True
    return c.vram_free is not None and c.vram_free >= c.min_free_vram


DEFAULT_FILTERS: tuple[Filter, ...] = (
    CAPABLE,
    Filter("all_down", "no backend is up", is_up),
    Filter("all_draining", "every backend that is up is draining", not_draining),
    Filter("all_stale", "no backend has fresh load data", has_fresh_load),
    Filter("not_enough_vram", "no backend has enough free VRAM", has_free_vram),
)


# The room filter's outcome: every backend is merely full (the job waits).
ROOM_OUTCOME = "all_busy"


def room_filter(max_pending: int) -> Filter:
    """Late binding: a backend takes a prompt only while it holds at most
    `max_pending` beyond the one it runs. Trade-off: with 1, a GPU never
    idles between jobs and the rest wait centrally, where they can go to
    whichever backend frees first; higher values trade that for fewer
    round trips per job."""
    limit = max_pending + 1
    return Filter(
        ROOM_OUTCOME,
        "every backend is busy",
        lambda c: c.load is not None and c.load < limit,
    )
