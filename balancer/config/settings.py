"""The whole typed configuration: one frozen dataclass per section, defaults
applied, read once.

`balancer.config.load` turns YAML into these; nothing else parses config.
Sizes are bytes (the loader accepts `8GiB`-style strings), times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from balancer.config.access_settings import AdminSettings, AuthSettings, CorsSettings
from balancer.config.backend_settings import (
    BackendSettings,
    CatalogSettings,
    HealthSettings,
    ProbeSettings,
)
from balancer.config.delivery_settings import OutputSettings, WebhookSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.config.server_settings import (
    LimitSettings,
    ListenSettings,
    LogSettings,
    ShutdownSettings,
    TimeoutSettings,
)
from balancer.config.storage_settings import (
    HistorySettings,
    ReplicaSettings,
    StoreSettings,
    UploadSettings,
)


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
