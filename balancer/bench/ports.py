"""Free loopback ports for child processes (benches, and tests that start a
process on a port they name).

A port found free is free only until someone binds it, and the kernel hands
out ports of its ephemeral range by itself: to every `bind(("", 0))` and to
every outgoing connection's own end. A child told such a port can find it
taken (by a connection the parent opened meanwhile, or by a server another
test started on port 0); a server restarted on "its" port likewise. So the
ports given here lie below that range, where nothing is assigned unasked,
and each is checked free by binding it.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

# Linux's own default, where /proc does not say.
EPHEMERAL = (32768, 60999)
# The lowest port handed out (above the usual fixed service ports).
LOWEST = 10_000
PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel assigns by itself (first, last)."""
    with contextlib.suppress(OSError, ValueError):
        first, last = PORT_RANGE.read_text().split()
        return int(first), int(last)
    return EPHEMERAL


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different ports, free now, from below the ephemeral range
    (each held until all are found, so the same one is never handed out
    twice). A random draw keeps two runs on one machine apart."""
    top = ephemeral_range()[0]
    if top - LOWEST < 1000:  # an unusual range: only the kernel can choose
        return _kernel_ports(count)
    draw = random.SystemRandom()
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            port = draw.randrange(LOWEST, top)
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
            ports.append(port)
        return ports


def _kernel_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
