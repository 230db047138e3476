"""Model residency: which models each backend probably holds in VRAM, and
how long loading one costs there (learned from finished jobs).

A backend is taken to hold the models of its most recent jobs (at most
`routing.resident_models` per backend, the least recently used forgotten
first). It forgets them all on `POST /free {"unload_models": true}` (the
balancer's own `free_on_drain` included), when it may have restarted (its
channel came back under a new id, or it was down), and when a probe sees its
VRAM use drop sharply. A load time follows the difference between cold and
warm run times of finished jobs; until a backend has its own figure for a
model it takes the pool's (the median of what other backends learned for it,
then for any model), and `routing.model_load_estimate` only before anything
was learned. A backend without warm runs yet measures its cold runs against
the pool's warm median. A job that leaves its backend before it ran there
(work stealing took it back, a recall cancelled it, the backend lost it)
loaded nothing: the models only it was to load there are not taken as
resident, and those it would have evicted still are.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from balancer.backends.state import Backend, LoadSnapshot
from balancer.catalog.needs import Needs
from balancer.logs import get_logger

log = get_logger("balancer.catalog")

# Recent warm run times kept per backend (their median is the warm baseline).
WARM_RUNS = 20
# Weight of a new observation in a learned load time.
LEARN_RATE = 0.3
# A probe seeing VRAM use fall by more than this share means models left.
VRAM_DROP = 0.5


def model_values(needs: Needs) -> tuple[str, ...]:
    """The model files a prompt loads: the `*_name` inputs of loader nodes
    (checkpoints, LoRAs, VAE, CLIP, UNet, ControlNet, upscalers, ...)."""
    seen: dict[str, None] = {}
    for v in needs.values:
        if "Loader" in v.class_type and v.input.endswith("_name"):
            seen[v.value] = None
    return tuple(seen)


def main_model(needs: Needs) -> str | None:
    """The prompt's main checkpoint or UNet, for per-model figures."""
    for v in needs.values:
        if v.input in ("ckpt_name", "unet_name"):
            return v.value
    return None


class JobEnd(Protocol):
    """What residency reads of a job event (balancer.jobs.events.JobEvent)."""

    @property
    def prompt_id(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def run_time(self) -> float | None: ...


@dataclass(frozen=True)
class _Dispatched:
    backend: str
    models: tuple[str, ...]
    # Those it made resident there, and those that made room for them.
    cold: tuple[str, ...]
    evicted: tuple[str, ...]


class Residency:
    def __init__(self, slots: int, load_estimate: float) -> None:
        self.slots = slots
        self.load_estimate = load_estimate
        self._resident: dict[str, OrderedDict[str, None]] = {}
        self._load: dict[tuple[str, str], float] = {}  # (backend, model) -> seconds
        self._warm: dict[str, deque[float]] = {}
        self._jobs: dict[str, _Dispatched] = {}
        self._started: set[str] = set()
        self._vram_used: dict[str, int] = {}

    def configure(self, slots: int, load_estimate: float) -> None:
        """New `routing.resident_models` and `routing.model_load_estimate`
        (a reload): fewer slots forget the least recently used at once."""
        self.slots, self.load_estimate = slots, load_estimate
        for held in self._resident.values():
            while len(held) > slots:
                held.popitem(last=False)

    def resident(self, backend: str) -> list[str]:
        """Most recently used last."""
        return list(self._resident.get(backend, ()))

    def load_time(self, backend: str, model: str) -> float:
        """Learned for the model (here, else the pool's median), else the
        pool's median for any model, else the configured estimate."""
        learned = self._learned(backend, model)
        if learned is not None:
            return learned
        return statistics.median(self._load.values()) if self._load else self.load_estimate

    def _learned(self, backend: str, model: str) -> float | None:
        own = self._load.get((backend, model))
        if own is not None:
            return own
        elsewhere = [t for (_, m), t in self._load.items() if m == model]
        return statistics.median(elsewhere) if elsewhere else None

    def cold_load(self, backend: str, models: tuple[str, ...]) -> float:
        """Seconds of loading the models not resident on `backend` would cost."""
        held: Mapping[str, None] = self._resident.get(backend, {})
        return sum(self.load_time(backend, m) for m in models if m not in held)

    def evicts(self, backend: str, models: tuple[str, ...]) -> float:
        """Seconds of loading that running `models` on `backend` pushes onto
        later jobs: each model it would evict (least recently used beyond
        `slots`) costs its load time, shared among the backends holding it
        (the only copy in the pool costs it all)."""
        held: Mapping[str, None] = self._resident.get(backend, {})
        if all(m in held for m in models):
            return 0.0
        kept = [m for m in held if m not in models]
        victims = kept[: max(0, len(kept) + len(set(models)) - self.slots)]
        return sum(self.load_time(backend, v) / self._copies(v) for v in victims)

    def _copies(self, model: str) -> int:
        return sum(model in held for held in self._resident.values())

    def dispatched(self, prompt_id: str, backend: str, models: tuple[str, ...]) -> None:
        """A job went to `backend`: its models will be resident there."""
        held = self._resident.setdefault(backend, OrderedDict())
        cold = tuple(m for m in models if m not in held)
        for model in models:
            held[model] = None
            held.move_to_end(model)
        evicted = []
        while len(held) > self.slots:
            evicted.append(held.popitem(last=False)[0])
        self._jobs[prompt_id] = _Dispatched(backend, models, cold, tuple(evicted))

    def taken_back(self, prompt_id: str) -> None:
        """The job left its backend before it ran (work stealing took it
        back, a recall cancelled it, the backend lost it): the models it was
        to load there are not resident after all, unless a later job there
        uses them (that job loads them now), and those they evicted still
        are (as the least recently used, while there is room; beyond it they
        count as evicted by that later job)."""
        job = self._jobs.pop(prompt_id, None)
        self._started.discard(prompt_id)
        held = self._resident.get(job.backend) if job is not None else None
        if job is None or held is None:
            return
        heir: str | None = None
        for model in job.cold:
            inheritor = self._heir(job.backend, model)
            if inheritor is None:
                held.pop(model, None)
            else:
                self._inherit(inheritor, cold=(model,))
                heir = heir or inheritor
        back = [m for m in job.evicted if m not in held]
        room = max(0, self.slots - len(held))
        handed, kept = back[: len(back) - room], back[len(back) - room :]
        for model in reversed(kept):
            held[model] = None
            held.move_to_end(model, last=False)
        if heir is not None and handed:
            self._inherit(heir, evicted=tuple(handed))

    def _heir(self, backend: str, model: str) -> str | None:
        """The first job on the way to `backend` that uses `model`."""
        return next(
            (p for p, j in self._jobs.items() if j.backend == backend and model in j.models), None
        )

    def _inherit(
        self, prompt_id: str, cold: tuple[str, ...] = (), evicted: tuple[str, ...] = ()
    ) -> None:
        job = self._jobs[prompt_id]
        self._jobs[prompt_id] = replace(
            job, cold=(*job.cold, *cold), evicted=(*evicted, *job.evicted)
        )

    def forget(self, backend: str, reason: str) -> None:
        if self._resident.pop(backend, None):
            log.info("residency_forgotten", backend=backend, reason=reason)

    def freed(self, backend: str) -> None:
        """`POST /free` unloaded its models."""
        self.forget(backend, "free")

    def restarted(self, backend: str) -> None:
        self.forget(backend, "restart")

    async def job_event(self, event: JobEnd) -> None:
        """Learn load times from finished jobs: a cold run minus the backend's
        warm median (the pool's while it has none) is the load time of the
        models it loaded; the first figure for a model replaces the guess, later
        ones move it by LEARN_RATE. A job that ends without having run there
        (cancelled or lost while pending) loaded nothing."""
        if event.phase == "running":
            if event.prompt_id in self._jobs:
                self._started.add(event.prompt_id)
            return
        if event.phase not in ("completed", "failed", "interrupted", "retried", "cancelled"):
            return
        if event.phase in ("retried", "cancelled") and event.prompt_id not in self._started:
            self.taken_back(event.prompt_id)
            return
        self._started.discard(event.prompt_id)
        job = self._jobs.pop(event.prompt_id, None)
        if job is None or event.phase != "completed" or event.run_time is None:
            return
        self._learn(job, event.run_time)

    def _learn(self, job: _Dispatched, run_time: float) -> None:
        warm = self._warm.setdefault(job.backend, deque(maxlen=WARM_RUNS))
        if not job.cold:
            warm.append(run_time)
            return
        baseline = warm or [t for runs in self._warm.values() for t in runs]
        if not baseline:
            return
        each = max(0.0, run_time - statistics.median(baseline)) / len(job.cold)
        for model in job.cold:
            known = self._learned(job.backend, model)
            fresh = each if known is None else known + LEARN_RATE * (each - known)
            self._load[(job.backend, model)] = fresh

    async def after_probe(self, backend: Backend, snapshot: LoadSnapshot) -> None:
        """Prober listener: VRAM use falling sharply means models were unloaded."""
        if snapshot.vram_total is None or snapshot.vram_free is None:
            return
        used = snapshot.vram_total - snapshot.vram_free
        before = self._vram_used.get(backend.name)
        self._vram_used[backend.name] = used
        if before is not None and used < before * (1 - VRAM_DROP):
            self.forget(backend.name, "vram_dropped")
