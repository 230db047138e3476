"""nginx as a benchmark's reference (reference.py): Debian's `nginx`
(1.22 in Debian 12; `apt-get install nginx-light` is enough) in the
foreground, with its pid, logs and temp files in the bench's folder, so no
root is needed. Round robin over the given backends (its default), with
keep-alive to them as a typical proxy config sets it (`keepalive 32` and
HTTP/1.1 upstream; nginx's default opens a connection per request) and no
access log (HAProxy's config logs nothing either); nginx's defaults
otherwise (one worker process, proxy buffering on)."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Sequence
from pathlib import Path

from balancer.bench.reference import Reference, Server


def _config(port: int, backend_ports: Sequence[int], folder: Path) -> str:
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in backend_ports)
    temp = "".join(
        f"    {kind}_temp_path {folder / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # `user` matters only when started as root: the workers stay that user,
    # so they can write the temp paths in the bench's own folder.
    return f"""\
daemon off;
user {getpass.getuser()};
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{
}}
http {{
    access_log off;
{temp}    upstream backends {{
{servers}        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def _arguments(config: Path, folder: Path) -> list[str]:
    # -e: the error log before the config is read (Debian's default path needs root).
    return ["-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)]


NGINX = Reference("nginx", _config, _arguments)


def nginx_in_front(
    folder: Path, backend_ports: Sequence[int]
) -> contextlib.AbstractContextManager[Server | None]:
    """nginx's base URL in front of 127.0.0.1:`backend_ports` and its
    master's process id, or None when nginx is not installed."""
    return NGINX.in_front(folder, backend_ports)
