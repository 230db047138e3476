"""Which cores a benchmark's processes run on.

`bench ws` compares a job sent straight to a backend with one sent through
the balancer. On a small machine both would share their cores with the
backends and the load generator, and the balancer's path would be measured
together with the CPU it takes from the emulated GPU servers (which stand
for machines of their own). So the balancer side (the balancer, and the
plain relay it is compared with) gets the first core this process may use,
and everything else (the emulators, the socket holders, the load generator:
this process) the others; the placement is the same for the direct and the
balancer's path. With one core there is nothing to split.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Placement:
    balancer: frozenset[int]
    rest: frozenset[int]

    def describe(self) -> str:
        return f"balancer on core {_cores(self.balancer)}, the rest on {_cores(self.rest)}"


def split_cores() -> Placement | None:
    """The balancer side on the lowest core available, the rest on the
    others; None when this process may use a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return Placement(frozenset(cores[:1]), frozenset(cores[1:]))


def pin_self(cores: frozenset[int]) -> None:
    """This process (and the threads and processes it starts from now on)."""
    os.sched_setaffinity(0, cores)


def pinned(cores: frozenset[int] | None) -> Callable[[], None] | None:
    """A `preexec_fn` that pins a child process before it runs anything."""
    if cores is None:
        return None
    return lambda: os.sched_setaffinity(0, cores)


def _cores(cores: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


def scheduled_ms(pid: int) -> tuple[float, float]:
    """Milliseconds a process has run on a core, and waited for one while
    runnable (/proc/<pid>/schedstat), since it started."""
    ran, waited = Path(f"/proc/{pid}/schedstat").read_text().split()[:2]
    return int(ran) / 1e6, int(waited) / 1e6
