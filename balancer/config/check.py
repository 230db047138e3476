"""`--check-config`: every error one per line, or a summary to eyeball."""

from __future__ import annotations

from pathlib import Path

from balancer.config.errors import ConfigError
from balancer.config.load import load_settings
from balancer.config.settings import Settings
from balancer.config.units import format_duration, format_size


def _summary(settings: Settings) -> str:
    """What an operator wants to eyeball before starting: where, to whom, how often."""
    host = settings.listen.host
    host = f"[{host}]" if ":" in host else host
    lines = [f"listen: {host}:{settings.listen.port}", f"backends: {len(settings.backends)}"]
    width = max(len(b.name) for b in settings.backends)
    for b in settings.backends:
        role = "primary" if b.primary else "-"
        lines.append(
            f"  {b.name:<{width}}  {b.url}  {role}  min_free_vram={format_size(b.min_free_vram)}"
        )
    probe = settings.probe
    lines.append(
        f"probe: every {format_duration(probe.interval)},"
        f" timeout {format_duration(probe.timeout)},"
        f" stale after {format_duration(probe.stale_after)}"
    )
    return "\n".join(lines)


def check_config(path: str | Path) -> tuple[int, str]:
    """Exit code and text for `--check-config`: errors one per line, or a summary."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return 1, "\n".join(exc.errors)
    return 0, f"config OK: {path}\n{_summary(settings)}"
