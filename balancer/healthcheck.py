"""`comfyui-balancer healthcheck`: exit 0 when the balancer a config file
describes answers `GET /balancer/ready` with 200, else 1 with the reason.

A container health check that follows the configured port: it reads
`listen.host`/`listen.port` from the same file `serve` reads.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from balancer.config import ConfigError, load_settings
from balancer.config.server_settings import ListenSettings

# A wildcard listen address is reached on loopback.
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def ready_url(listen: ListenSettings) -> str:
    host = LOOPBACK.get(listen.host, listen.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{listen.port}/balancer/ready"


def healthcheck(config: str | Path, timeout: float = 2.0) -> tuple[int, str]:
    """Exit code and one line: `ready: {...}`, `not ready: {...}`, or why not."""
    try:
        url = ready_url(load_settings(config).listen)
    except ConfigError as exc:
        return 1, "\n".join(exc.errors)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 0, f"ready: {resp.read().decode()}"
    except urllib.error.HTTPError as exc:
        return 1, f"not ready: {exc.read().decode()}"
    except OSError as exc:
        return 1, f"no balancer answers {url}: {exc}"
