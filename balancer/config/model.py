"""Typed settings: plain frozen dataclasses, defaults applied, read once.

`balancer.config.load` turns YAML into these; nothing else parses config.
Sizes are bytes (the loader accepts `8GiB`-style strings), times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from balancer.config.thresholds import VramThreshold

MiB = 1024 * 1024

LogLevel = Literal["debug", "info", "warning", "error"]
RoutingPolicy = Literal["least_loaded", "expected_finish", "model_affinity", "round_robin"]


@dataclass(frozen=True)
class ListenSettings:
    host: str = "127.0.0.1"
    port: int = 8188


@dataclass(frozen=True)
class ProbeSettings:
    """How the prober watches backends."""

    interval: float = 1.0
    # How often /system_stats (VRAM) is read; 0: with every probe.
    stats_interval: float = 0.0
    timeout: float = 2.0
    unhealthy_after: int = 3
    healthy_after: int = 1
    # Load data older than this makes a backend ineligible (unknown is not idle).
    stale_after: float = 5.0
    # While a backend's event channel is up, how often its /queue is still
    # read: its `status` pushes bring every queue change, and each round
    # pings it over the channel instead.
    channel_interval: float = 10.0
    # How often it is read while, besides, nothing says it holds anything:
    # its pushes and last read show an empty queue, nothing is on its way
    # to it, and the balancer follows no job there (VRAM is then read this
    # seldom too).
    idle_interval: float = 60.0


@dataclass(frozen=True)
class HealthSettings:
    """Readiness (`GET /balancer/ready`): 200 only with at least this many
    backends able to take prompts."""

    min_backends_up: int = 1


@dataclass(frozen=True)
class LimitSettings:
    max_body: int = 100 * MiB
    # Largest POST /upload/image|mask body the balancer's upload store accepts.
    max_upload: int = 100 * MiB
    # A connection whose request headers are not complete this long after it
    # opened is closed (slowloris); one peer may hold this many connections.
    header_timeout: float = 10.0
    max_connections_per_peer: int = 256


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
class TimeoutSettings:
    """Upstream timeouts. ComfyUI validates prompts in its event loop and
    `/object_info` can be slow, so these are generous."""

    connect: float = 5.0
    request: float = 300.0


@dataclass(frozen=True)
class BackendSettings:
    name: str
    url: str
    primary: bool = False
    min_free_vram: int = 0
    # Drain (no new prompts) when used VRAM goes over `vram_limit`; take
    # prompts again only below `vram_resume` (default: 90 % of the limit).
    vram_limit: VramThreshold | None = None
    vram_resume: VramThreshold | None = None
    # Once drained and idle, POST /free {"unload_models": true} (once per drain).
    free_on_drain: bool = False
    # Drained by the operator in the file.
    drain: bool = False


@dataclass(frozen=True)
class AdminSettings:
    # With a token, /balancer/backends... need `Authorization: Bearer <token>`;
    # without one they answer loopback peers only.
    token: str | None = None


@dataclass(frozen=True)
class ShutdownSettings:
    # On SIGTERM, how long in-flight requests may take to finish.
    timeout: float = 10.0


@dataclass(frozen=True)
class RoutingSettings:
    """The balancer-side queue (late binding) and failover."""

    # Prompts a backend may hold beyond the one it runs; more wait in the
    # balancer. None = unbounded (send every prompt at once).
    max_pending_per_backend: int | None = 1
    # Prompts waiting in the balancer; beyond it POST /prompt gets 429.
    max_queue: int = 10_000
    # Dispatches of one prompt (first run plus failovers) before it fails.
    max_attempts: int = 3
    # Take a job pending behind a running one back to an idle backend.
    work_stealing: bool = True
    # How a backend is chosen (balancer.scheduling.policies): `least_loaded`
    # binds late to the least-loaded backend with room; `round_robin` sends
    # every prompt at once to the next backend in turn (a baseline; it ignores
    # max_pending_per_backend).
    policy: RoutingPolicy = "least_loaded"
    # How long the jobs of a backend that stopped answering (timeouts, not a
    # refused or reset connection) are left to it before they are sent
    # elsewhere; a backend back in time keeps them. Seconds.
    failover_grace: float = 60.0
    # model_affinity: the first guess of a model's load time (seconds), until
    # cold and warm runs of finished jobs teach the real one per backend.
    model_load_estimate: float = 10.0
    # Models a backend is taken to hold in VRAM: those of its most recent
    # jobs, at most this many (the least recently used forgotten first).
    resident_models: int = 2
    # model_affinity: waiting jobs the late binder looks through for one to
    # bind while those before it wait for a backend holding their models
    # (each waits at most what that saves). None: 16; 0: no job waits.
    warm_lookahead: int | None = None


@dataclass(frozen=True)
class CatalogSettings:
    """Each backend's catalogue (node classes, combo values, model files)."""

    # Read again this often (also when a backend comes up or its channel
    # reconnects, and on POST /balancer/backends/{name}/refresh).
    refresh: float = 600.0


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
class ReplicaSettings:
    """This balancer among several replicas that share one Redis."""

    # How the others and the status page name it; empty: `<hostname>-<pid>`.
    name: str = ""
    # Not renewed for this long (it renews every second), a replica is gone
    # and another one adopts the jobs it followed. Seconds.
    lease: float = 5.0
    # Where operators reach this replica; empty: http://<hostname>:<listen.port>.
    advertise: str = ""


@dataclass(frozen=True)
class HistorySettings:
    """Finished jobs' history entries the balancer keeps (ComfyUI keeps 10,000)."""

    # Past this many, the oldest by start time go.
    max_items: int = 10_000
    # Entries whose job started longer ago than this go (seconds); None: no
    # age limit, as ComfyUI. Their pins go with them.
    max_age: float | None = None


@dataclass(frozen=True)
class LogSettings:
    level: LogLevel = "info"
    format: Literal["json", "console"] = "json"


KeyScope = Literal["client", "admin"]


@dataclass(frozen=True)
class ApiKey:
    """One API key: only its SHA-256 is kept (never the key itself)."""

    name: str
    sha256: bytes = field(repr=False)
    scope: KeyScope = "client"
    # Token bucket: `rate` prompts per second, up to `burst` at once.
    rate: float | None = None
    burst: int | None = None
    # Jobs of this key that may wait or run at once; more get 429.
    max_queued: int | None = None


@dataclass(frozen=True)
class AuthSettings:
    """Access control (balancer.auth). No keys: everyone is anonymous."""

    keys: tuple[ApiKey, ...] = ()
    # Without keys, listening on a non-loopback address needs this.
    allow_anonymous: bool = False
    # /metrics, /balancer and /balancer/status open to everyone.
    public_status: bool = True
    # How long a browser sign-in (the session cookie) lasts.
    session_ttl: float = 12 * 3600.0
    # HMAC key for session cookies, from `{env: VAR}`; None: generated once
    # and kept in `<data_dir>/session_secret`.
    session_secret: bytes | None = field(default=None, repr=False)
    # Peers (addresses or networks) whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class CorsSettings:
    # Origins (scheme://host[:port]) browsers may call from; empty: none.
    origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookSettings:
    """Completion callbacks (balancer.webhooks)."""

    # Default URL when a job carries no `extra_data.webhook`.
    url: str | None = None
    # HMAC-SHA256 key for `X-Balancer-Signature`.
    secret: str | None = field(default=None, repr=False)
    # Hosts webhooks may be sent to; anything else is refused.
    allow: tuple[str, ...] = ()
    max_attempts: int = 5
    timeout: float = 10.0


@dataclass(frozen=True)
class OutputSettings:
    """Copies of finished jobs' outputs in object storage (balancer.outputs).
    Credentials come from the standard AWS chain (environment, profile, role),
    never from this file."""

    sink: Literal["none", "s3"] = "none"
    bucket: str = ""
    # Keys are `{prefix}/{tenant}/{prompt_id}/{node_id}/{filename}`.
    prefix: str = "outputs"
    # Any S3-compatible store (R2, MinIO, GCS interoperability); null: AWS.
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing: Literal["path", "virtual"] = "virtual"
    presign_ttl: float = 3600.0
    # A CDN or public bucket: `url` is this + "/" + key instead of a signed URL.
    public_base_url: str | None = None
    include_temp: bool = False
    # Hold a job's end until its copies are done (or failed after retries).
    wait: bool = True
    # GET /view of a stored output: stream it from the bucket, or 302 to a signed URL.
    view: Literal["stream", "redirect"] = "stream"
    # Delete a job's objects this long after its end; null: keep them.
    delete_after: float | None = None
    # Tries per file before it is given up (`stored: false`); the wait after
    # the first failed try, doubled after each one.
    max_attempts: int = 5
    retry_delay: float = 0.5


@dataclass(frozen=True)
class Settings:
    backends: tuple[BackendSettings, ...] = ()
    listen: ListenSettings = field(default_factory=ListenSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    log: LogSettings = field(default_factory=LogSettings)
    uploads: UploadSettings = field(default_factory=UploadSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    shutdown: ShutdownSettings = field(default_factory=ShutdownSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    outputs: OutputSettings = field(default_factory=OutputSettings)
    # Where the balancer keeps its own files: balancer.db, uploads/, user/.
    data_dir: str = "./data"
