"""What the sink reports: Prometheus series and the status page's state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from balancer.outputs.copier import Copied

PREFIX = "comfyui_balancer_outputs"
# One output copy: a small PNG in milliseconds, a video in minutes.
COPY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf"))


class OutputMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.bytes = Counter(
            f"{PREFIX}_stored_bytes", "bytes copied to the bucket", registry=registry
        )
        self.files = Counter(
            f"{PREFIX}_stored_files",
            "output files in the bucket, by how: put, multipart, or skipped (already there)",
            ["how"],
            registry=registry,
        )
        self.failures = Counter(
            f"{PREFIX}_copy_failures",
            "output files given up after every retry (stored: false)",
            registry=registry,
        )
        self.seconds = Histogram(
            f"{PREFIX}_copy_seconds",
            "time to copy one output file, retries included",
            buckets=COPY_BUCKETS,
            registry=registry,
        )

    def copied(self, result: Copied) -> None:
        self.seconds.observe(result.seconds)
        if not result.stored:
            self.failures.inc()
            return
        how = "skipped" if result.skipped else "multipart" if result.parts > 1 else "put"
        self.files.labels(how).inc()
        if not result.skipped:
            self.bytes.inc(result.size)
