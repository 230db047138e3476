"""HAProxy as a benchmark's reference (reference.py): Debian's `haproxy`
in the foreground (`-db`), round robin over the given backends with
HAProxy's defaults otherwise (keep-alive to the servers, one thread per
core)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from balancer.bench.reference import Reference, Server


def _config(port: int, backend_ports: Sequence[int], folder: Path) -> str:
    servers = "".join(
        f"    server upstream{i} 127.0.0.1:{p}\n" for i, p in enumerate(backend_ports)
    )
    return f"""\
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend bench
    bind 127.0.0.1:{port}
    default_backend upstream
backend upstream
{servers}"""


HAPROXY = Reference("haproxy", _config, lambda config, _: ["-db", "-f", str(config)])


def haproxy_binary() -> str | None:
    return HAPROXY.installed()


def haproxy_in_front(
    folder: Path, backend_port: int
) -> contextlib.AbstractContextManager[Server | None]:
    """HAProxy's base URL in front of 127.0.0.1:`backend_port` and its
    process id, or None when HAProxy is not installed."""
    return HAPROXY.in_front(folder, [backend_port])
