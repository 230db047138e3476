"""Prometheus metrics through `prometheus-client`, on a registry the app owns.

Per-backend gauges are read from the backend registry at scrape time by a
custom collector, so a removed backend disappears from /metrics at once.
Counters and histograms are fed by job events, routing decisions, drains and
the request-timing middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from balancer.backends.state import Backend
from balancer.jobs.events import JobEvent
from balancer.webhooks.gauge import OwedGauge

PREFIX = "comfyui_balancer"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Queue wait and run time of ComfyUI jobs: seconds to many minutes.
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))
ENDED = frozenset({"completed", "failed", "interrupted"})
# The balancer's own answers: sub-millisecond to a long /view stream.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)

# (suffix, help, value of one backend)
GAUGES: tuple[tuple[str, str, Callable[[Backend], float | None]], ...] = (
    ("up", "1 if the backend is healthy by the prober's thresholds", lambda b: b.healthy),
    ("draining", "1 if the backend takes no new prompts", lambda b: b.draining),
    (
        "queue_running",
        "prompts running, by the latest probe",
        lambda b: len(b.snapshot.running) if b.snapshot else None,
    ),
    (
        "queue_pending",
        "prompts waiting in the backend's queue, by the latest probe",
        lambda b: len(b.snapshot.pending) if b.snapshot else None,
    ),
    ("inflight", "prompts the balancer is sending right now", lambda b: b.inflight),
    (
        "vram_used_bytes",
        "VRAM in use on the first device",
        lambda b: _vram_used(b),
    ),
    (
        "vram_total_bytes",
        "VRAM of the first device",
        lambda b: b.snapshot.vram_total if b.snapshot else None,
    ),
)


def _vram_used(b: Backend) -> float | None:
    snap = b.snapshot
    if snap is None or snap.vram_total is None or snap.vram_free is None:
        return None
    return snap.vram_total - snap.vram_free


class BackendCollector:
    """The per-backend gauges, computed from the registry on every scrape."""

    def __init__(self, backends: Callable[[], Iterable[Backend]]) -> None:
        self.backends = backends

    def collect(self) -> Iterator[Metric]:
        backends = list(self.backends())
        for suffix, help_, value in GAUGES:
            family = GaugeMetricFamily(f"{PREFIX}_backend_{suffix}", help_, labels=["backend"])
            for b in backends:
                v = value(b)
                if v is not None:
                    family.add_metric([b.name], float(v))
            yield family


class ReplicaLabelled:
    """Every series of `source` with a `replica` label: with several
    replicas each one's numbers are its own (its jobs, its requests, its view
    of each backend), and Prometheus tells them apart by this label."""

    def __init__(self, source: CollectorRegistry, replica: str) -> None:
        self.source = source
        self.replica = replica

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                labels = {**sample.labels, "replica": self.replica}
                labelled.add_sample(
                    sample.name, labels, sample.value, sample.timestamp, sample.exemplar
                )
            yield labelled


def exposed(registry: CollectorRegistry, replica: str | None) -> Collector:
    """What /metrics renders: the registry, labelled when one of several replicas."""
    if replica is None:
        return registry
    view = CollectorRegistry(auto_describe=False)
    view.register(ReplicaLabelled(registry, replica))
    return view


# Distinct values of the `model` label before the rest count as "other".
MODEL_LABELS = 50


class Metrics:
    def __init__(
        self,
        backends: Callable[[], Iterable[Backend]],
        known_models: Callable[[], frozenset[str]],
        replica: str | None = None,
    ) -> None:
        # Checkpoints and UNets some backend offers: the `model` label takes
        # only these (at most MODEL_LABELS of them), anything else is "other".
        self.known_models = known_models
        self._model_labels: set[str] = set()
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.registry.register(BackendCollector(backends))
        self.owed = OwedGauge()  # read from the store at each scrape (`scrape`)
        self.registry.register(self.owed)
        self._exposed = exposed(r, replica)
        self.submitted = Counter(
            f"{PREFIX}_jobs_submitted", "prompts a backend accepted", ["backend"], registry=r
        )
        self.completed = Counter(
            f"{PREFIX}_jobs_completed", "jobs that ended successfully", ["backend"], registry=r
        )
        self.failed = Counter(
            f"{PREFIX}_jobs_failed", "jobs that ended with an error", ["backend"], registry=r
        )
        self.duplicated = Counter(
            f"{PREFIX}_jobs_duplicated",
            "second runs of a job that ended after its first (failover after the grace)",
            ["backend"],
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_routing_decisions",
            "routing decisions, one per prompt (rerouted: once more per re-route), by outcome",
            ["outcome"],
            registry=r,
        )
        self.drains = Counter(
            f"{PREFIX}_drains",
            "drain reasons added to a backend",
            ["backend", "reason"],
            registry=r,
        )
        self.proxy_errors = Counter(
            f"{PREFIX}_proxy_errors",
            "requests answered with a 5xx status, by route class",
            ["route_class"],
            registry=r,
        )
        self.queue_wait = Histogram(
            f"{PREFIX}_job_queue_wait_seconds",
            "submission to start of execution",
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.run_time = Histogram(
            f"{PREFIX}_job_run_seconds",
            "start to end of execution, by the prompt's main checkpoint or UNet",
            ["model"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.request_time = Histogram(
            f"{PREFIX}_proxy_request_seconds",
            "time to answer a client request, by route class",
            ["route_class"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self._timers: dict[str, Histogram] = {}  # request_time's child per route class
        self._by_phase = {
            "dispatched": self.submitted,
            "completed": self.completed,
            "failed": self.failed,
            "duplicated": self.duplicated,
        }

    async def job_event(self, event: JobEvent) -> None:
        """JobEvents observer: counts per backend, timings once per ended job."""
        counter = self._by_phase.get(event.phase)
        if counter is not None:
            counter.labels(event.backend or "none").inc()
        if event.phase in ENDED:
            if event.queue_wait is not None:
                self.queue_wait.observe(max(0.0, event.queue_wait))
            if event.run_time is not None:
                self.run_time.labels(self.model_label(event.model)).observe(
                    max(0.0, event.run_time)
                )

    def model_label(self, model: str | None) -> str:
        """The model itself while the label set stays bounded, else "other"."""
        if model is None:
            return "none"
        if model in self._model_labels:
            return model
        if len(self._model_labels) < MODEL_LABELS and model in self.known_models():
            self._model_labels.add(model)
            return model
        return "other"

    def routing(self, outcome: str) -> None:
        self.decisions.labels(outcome).inc()

    def drain_changed(self, backend: str, reason: str, drained: bool) -> None:
        if drained:
            self.drains.labels(backend, reason).inc()

    def request(self, route_class: str, seconds: float, status: int) -> None:
        """One answered request (its child histogram looked up once per class:
        `labels` costs more than `observe`)."""
        timer = self._timers.get(route_class)
        if timer is None:
            timer = self._timers[route_class] = self.request_time.labels(route_class)
        timer.observe(seconds)
        if status >= 500:
            self.proxy_errors.labels(route_class).inc()

    def render(self) -> bytes:
        return generate_latest(self._exposed)

    async def scrape(self, count_owed: Callable[[], Awaitable[int]]) -> bytes:
        """/metrics: the gauges read from the store, then every series."""
        await self.owed.read(count_owed)
        return self.render()
