"""Scores: lower is better."""

from __future__ import annotations

from collections.abc import Callable

from balancer.scheduling.candidate import Candidate


def least_loaded(c: Candidate) -> float:
    """queue_running + queue_pending + dispatches the probe has not seen.

    Trade-off: it counts jobs, not their cost, so a backend holding one long
    job looks as busy as one holding one short job. Job sizes are unknown at
    submission, and counting is what keeps a burst from piling onto one node.
    """
    return float(c.load if c.load is not None else 0)


def expected_finish(c: Candidate) -> float:
    """(load + 1) x slowness: when a job sent now would finish, in units of
    the fastest backend's run time. With equal speeds it ranks as least_loaded.

    Trade-off: speed is learnt from finished jobs (a moving average of run
    time), so it needs a few runs per backend and lags a change; a backend
    that ran only long jobs looks slow. It keeps jobs on fast GPUs when a
    slow one is idle, which least_loaded (blind to speed) does not.
    """
    return float((c.load or 0) + 1) * c.slowness


def model_affinity(c: Candidate) -> float:
    """Expected seconds until a job sent now would finish here: the jobs
    queued ahead and this one, at the pool's job time, plus loading the
    prompt's models not resident there, plus the loading that evicting
    models there pushes onto later jobs (a model's load time, shared among
    the backends that hold it). Where every backend holds the prompt's
    models it ranks (and ties) exactly as least_loaded, whatever their run
    times.

    It does not weigh a backend's slowness (expected_finish does): that
    figure is the median of all of a backend's runs, cold ones included, so
    a backend that loaded models would pay for its loads twice (here in
    cold_load, and again as "slow"); and between identical GPUs it is noise
    (emulated backends on a loaded machine measured 1.28-1.41x of the
    fastest), which made this policy send work away from a backend holding
    the model for no gain.

    Trade-off: residency is inferred from the jobs the balancer sent (a
    model loaded by someone else, or evicted early by a large job, is
    guessed wrong until the next run shows it), and a job may wait behind a
    busy backend holding its model while another GPU idles, which pays off
    only while a load costs more than the queue ahead. Blind to speed, it
    sends as much work to a slow GPU as to a fast one holding the same
    models, as least_loaded does.
    """
    return ((c.load or 0) + 1) * c.job_time + c.cold_load + c.evicts


def round_robin(c: Candidate) -> float:
    """The same for every backend: all eligible backends tie and the picker's
    rotation takes them in turn, whatever their load.

    Trade-off: blind to load and speed, so a slow or backed-up backend gets
    the same share as an idle fast one. Here as a baseline to compare with.
    """
    return 0.0


Score = Callable[[Candidate], float]
