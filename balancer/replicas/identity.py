"""Who this replica is: its name among the replicas and where it is reached."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from balancer.config.server_settings import ListenSettings
from balancer.config.storage_settings import ReplicaSettings


@dataclass(frozen=True)
class Replica:
    name: str
    address: str


def identify(
    settings: ReplicaSettings,
    listen: ListenSettings,
    hostname: str | None = None,
    pid: int | None = None,
) -> Replica:
    """The configured name and address, or `<hostname>-<pid>` and
    `http://<hostname>:<port>` (a wildcard listen address is no address)."""
    host = hostname or socket.gethostname()
    name = settings.name or f"{host}-{os.getpid() if pid is None else pid}"
    address = settings.advertise or f"http://{host}:{listen.port}"
    return Replica(name, address)
