"""A reference proxy beside the balancer in a benchmark (HAProxy, nginx):
Debian's binary, started in the foreground from a config generated into a
folder of the bench's, on a free loopback port, in front of the given
backends; stopped on exit. Where it is not installed the bench gets None and
prints a note instead of its columns. No root is needed: every path it
writes (pid, logs, temp files) is in that folder."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from balancer.bench.harness import free_port, running

# sbin is often not on a user's PATH, and Debian installs them there.
SEARCH = ":".join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

Server = tuple[str, int]  # base URL, the pid of the process that serves it
# (its port, the backends' ports, its folder) -> the config's text
Config = Callable[[int, Sequence[int], Path], str]
# (the config file, its folder) -> the arguments after the binary
Arguments = Callable[[Path, Path], list[str]]


@dataclass(frozen=True)
class Reference:
    binary: str  # its name on the PATH (or in sbin)
    config: Config
    arguments: Arguments

    def installed(self) -> str | None:
        """The binary's path, or None when it is not installed."""
        return shutil.which(self.binary, path=SEARCH)

    @contextlib.contextmanager
    def in_front(self, folder: Path, backend_ports: Sequence[int]) -> Iterator[Server | None]:
        """Its base URL and process id, in front of 127.0.0.1:`backend_ports`
        (its own files under `folder`/<binary>), or None when it is not
        installed. The caller waits until it answers."""
        binary = self.installed()
        if binary is None:
            yield None
            return
        home = folder / self.binary
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = home / "bench.conf"
        config.write_text(self.config(port, backend_ports, home))
        command = [binary, *self.arguments(config, home)]
        with running(command, home / "output.log") as proc:
            yield f"http://127.0.0.1:{port}", proc.pid


def family(pid: int) -> list[int]:
    """A reference proxy's processes: `pid` (nginx's master) and its children
    (its workers), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]
