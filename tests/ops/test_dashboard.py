"""The Grafana dashboard and the alert rules name only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from balancer.backends.registry import Registry
from balancer.backends.state import LoadSnapshot
from balancer.config.backend_settings import BackendSettings
from balancer.jobs.events import JobEvent
from balancer.ops.metrics import Metrics

CONFIG = Path(__file__).parents[2] / "config"
NAME = re.compile(r"comfyui_balancer_[a-z_]+")


async def exposed() -> set[str]:
    """Every sample name /metrics shows once each metric has a value."""
    registry = Registry((BackendSettings(name="gpu0", url="http://x:1"),))
    for backend in registry:
        backend.snapshot = LoadSnapshot(0.0, (), (), 10, 5)
    metrics = Metrics(lambda: registry, frozenset)
    metrics.request("ops", 0.1, 500)
    metrics.routing("chosen")
    metrics.drain_changed("gpu0", "vram", True)
    for phase in ("dispatched", "completed", "failed"):
        await metrics.job_event(JobEvent("p", phase, "gpu0", queue_wait=1.0, run_time=2.0))  # type: ignore[arg-type]
    return {s.name for family in metrics.registry.collect() for s in family.samples}


async def test_dashboard_and_alerts_use_real_metric_names() -> None:
    dashboard = (CONFIG / "grafana-dashboard.json").read_text()
    rules = yaml.safe_load((CONFIG / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    panels = json.loads(dashboard)["panels"]
    exprs += [t["expr"] for panel in panels for t in panel["targets"]]
    used = {name for expr in exprs for name in NAME.findall(expr)}
    names = await exposed()
    assert used and used <= names, used - names
