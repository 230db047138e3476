"""bench pick's timer: a window that ends before its first call (the bench
preempted at once on a loaded machine) still times calls instead of
dividing by zero and losing the run."""

from __future__ import annotations

import re

from balancer.bench.pick import WINDOWS, per_call_us


def test_windows_too_short_for_one_call_still_time_one_batch() -> None:
    calls = []
    printed = per_call_us(lambda: calls.append(1), seconds=0.0)
    assert re.fullmatch(r"\d+\.\d / \d+\.\d", printed), printed
    assert len(calls) == 10 * WINDOWS, "one batch of 10 per window"
