"""A real Redis for tests and benchmarks: Debian's `redis-server` on a free
loopback port, in a temp dir of its own, with no persistence to disk (a test's
data lives only as long as its server)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from balancer.bench.harness import free_port

REDIS_SERVER = "redis-server"


def redis_server_binary() -> str | None:
    """The path of `redis-server`, or None when it is not installed."""
    return shutil.which(REDIS_SERVER)


@dataclass
class RedisServer:
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and return once it answers PING (blocking, a few ms)."""
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError(f"{REDIS_SERVER} is not installed")
        self.root.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.root),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10.0
        while self.command(b"PING") != b"+PONG":
            assert self.proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)

    def command(self, *words: bytes) -> bytes | None:
        """One command over a plain socket; its first reply line, or None
        when the server does not answer (not up yet, or gone)."""
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(request)
                return conn.makefile("rb").readline().rstrip(b"\r\n")
        except OSError:
            return None

    def flush(self) -> None:
        """Empty every database: the next test starts from nothing."""
        assert self.command(b"FLUSHALL") == b"+OK", "redis-server did not flush"

    def stop(self) -> None:
        """Stop at once (SIGKILL): tests use it to show what a lost Redis does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
