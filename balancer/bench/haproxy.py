"""HAProxy as a benchmark's reference: Debian's `haproxy`, started in the
foreground from a generated config on a free loopback port, in front of one
backend, with HAProxy's defaults otherwise; stopped on exit. Where it is not
installed the bench gets None and prints that instead of its column."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from balancer.bench.harness import free_port, running

# sbin is often not on a user's PATH, and Debian installs it there.
SEARCH = ":".join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

CONFIG = """\
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
    server upstream 127.0.0.1:{backend_port}
"""


def haproxy_binary() -> str | None:
    return shutil.which("haproxy", path=SEARCH)


@contextlib.contextmanager
def haproxy_in_front(folder: Path, backend_port: int) -> Iterator[tuple[str, int] | None]:
    """HAProxy's base URL in front of 127.0.0.1:`backend_port` and its
    process id, or None when HAProxy is not installed. The caller waits
    until it answers."""
    binary = haproxy_binary()
    if binary is None:
        yield None
        return
    port = free_port()
    config = folder / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, backend_port=backend_port))
    with running([binary, "-db", "-f", str(config)], folder / "haproxy.log") as proc:
        yield f"http://127.0.0.1:{port}", proc.pid
