"""Apply newly loaded settings to a running balancer without dropping anything.

The settings object on the Balancer is replaced in one assignment, and the
parts that copied a section at start (prober, submitter, upstream) get the
new one. Backends are added, updated or removed through Membership. Settings
fixed when the server started (listen, limits, connect timeout, shutdown,
log format) are logged as needing a restart.
"""

from __future__ import annotations

from balancer.config.reload import diff_backends
from balancer.config.settings import Settings
from balancer.logs import get_logger
from balancer.ops.membership import Membership
from balancer.state import Balancer

log = get_logger("balancer.config")

RESTART_ONLY = (
    "listen",
    "limits",
    "shutdown",
    "log",
    "uploads",
    "data_dir",
    "store",
    "history",
    "replicas",
)


def restart_needed(old: Settings, new: Settings) -> list[str]:
    keys = [k for k in RESTART_ONLY if getattr(old, k) != getattr(new, k)]
    if old.timeouts.connect != new.timeouts.connect:
        keys.append("timeouts.connect")
    return keys


async def apply_settings(b: Balancer, members: Membership, new: Settings) -> None:
    live = [x.settings for x in b.registry if "removed" not in x.drain_reasons]
    diff = diff_backends(live, new.backends)
    old, b.settings = b.settings, new
    b.prober.settings = new.probe
    b.dispatcher.probe = new.probe
    b.routing.apply(new.routing)
    b.residency.configure(new.routing.resident_models, new.routing.model_load_estimate)
    b.catalogue_reader.refresh = new.catalog.refresh
    b.binder.wake()
    b.upstream.request_timeout = new.timeouts.request
    for settings in diff.added:
        await members.add(settings)
    for settings in new.backends:
        if settings not in diff.added:
            await members.update(settings)
    for name in diff.removed:
        await members.remove(name)
    later = restart_needed(old, new)
    if later:
        log.warning("config_restart_needed", keys=later)
    log.info(
        "config_applied",
        added=[s.name for s in diff.added],
        removed=list(diff.removed),
        changed=[s.name for s in diff.changed],
    )
