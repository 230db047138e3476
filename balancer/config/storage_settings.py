"""Settings of what the balancer keeps: its store (jobs, pins, kept history),
how much history, uploads on disk, and its place among replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from balancer.config.units import MiB


@dataclass(frozen=True)
class StoreSettings:
    """Where jobs, pins and kept history live."""

    kind: Literal["sqlite", "memory", "redis"] = "sqlite"
    # Empty: `<data_dir>/balancer.db` (kind: sqlite).
    path: str = ""
    # kind: redis: `redis://[:password@]host:port/db`, `rediss://` for TLS.
    url: str = ""
    # Every Redis key starts with this, so several pools can share one Redis.
    prefix: str = "balancer:"
    # A Redis silent this long (connect, or one call) counts as unreachable.
    timeout: float = 2.0


@dataclass(frozen=True)
class HistorySettings:
    """Finished jobs' history entries the balancer keeps (ComfyUI keeps 10,000)."""

    # Past this many, the oldest by start time go.
    max_items: int = 10_000
    # Entries whose job started longer ago than this go (seconds); None: no
    # age limit, as ComfyUI. Their pins go with them.
    max_age: float | None = None


@dataclass(frozen=True)
class UploadSettings:
    """The balancer's upload store (content-addressed blobs on disk)."""

    # Empty: `<data_dir>/uploads`.
    dir: str = ""
    # Blobs unused for longer than this are evicted (unless a job needs them).
    max_age: float = 7 * 24 * 3600.0
    # The store is trimmed, oldest first, to at most this many bytes.
    max_bytes: int = 10 * 1024 * MiB


@dataclass(frozen=True)
class ReplicaSettings:
    """This balancer among several replicas that share one Redis."""

    # How the others and the status page name it; empty: `<hostname>-<pid>`.
    name: str = ""
    # Not renewed for this long (it renews every second), a replica is gone
    # and another one adopts the jobs it followed. Seconds.
    lease: float = 5.0
    # Where operators reach this replica; empty: http://<hostname>:<listen.port>.
    advertise: str = ""
