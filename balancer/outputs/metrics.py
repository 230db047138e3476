"""What the sink reports: Prometheus series and the status page's state."""

from __future__ import annotations

from dataclasses import dataclass

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
            f"{PREFIX}_stored_files", "output files in the bucket", ["how"], registry=registry
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
        self.files.labels("skipped" if result.skipped else "copied").inc()
        if not result.skipped:
            self.bytes.inc(result.size)


@dataclass
class SinkState:
    """For the status page: can the bucket be reached, the last error, and
    how many files wait to be copied."""

    reachable: bool | None = None  # None: nothing tried yet
    last_error: str | None = None
    backlog: int = 0

    def record(self, result: Copied) -> None:
        bucket_errors = [str(e) for e in result.attempts if e.source == "bucket"]
        if bucket_errors:
            self.last_error = bucket_errors[-1]
        elif result.error is not None:
            self.last_error = result.error
        # The last try decides: it reached the bucket unless the bucket failed it.
        last = result.attempts[-1] if result.attempts and not result.stored else None
        self.reachable = last is None or last.source != "bucket"

    def document(self) -> dict[str, object]:
        return {"reachable": self.reachable, "last_error": self.last_error, "backlog": self.backlog}
