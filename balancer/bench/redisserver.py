"""A real Redis for tests and benchmarks: Debian's `redis-server` on a free
loopback port, in a temp dir of its own, with no persistence to disk (a test's
data lives only as long as its server)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from balancer.bench.harness import free_port

REDIS_SERVER = "redis-server"


def redis_server_binary() -> str | None:
    """The path of `redis-server`, or None when it is not installed."""
    return shutil.which(REDIS_SERVER)


# Tries at starting on a newly chosen port: a port found free can be taken
# (by any socket, an outgoing connection too) before redis-server binds it.
PORT_TRIES = 5
# Seconds a command may wait for its answer: only bounds a hang (a loaded
# machine can take long to schedule the server; a stopped one is refused).
ANSWER_BOUND = 10.0


@dataclass
class RedisServer:
    root: Path
    # 0 until the first start chooses one; a restart keeps it.
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and return once it answers PING (blocking, a few ms).
        The first start chooses a free port, and another one if that was
        taken before the server bound it; a restart uses the same port."""
        if self.port:
            assert self._launch(self.port), f"redis-server could not bind port {self.port}"
            return
        for _ in range(PORT_TRIES):
            if self._launch(port := free_port()):
                self.port = port
                return
        raise RuntimeError(f"redis-server found no free port in {PORT_TRIES} tries")

    def _launch(self, port: int) -> bool:
        """redis-server on `port`: True once it answers, False if it exited
        (the port was taken). Its own process must answer, not a server of
        someone else's that holds the port."""
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError(f"{REDIS_SERVER} is not installed")
        self.root.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(self.root),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.proc = proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60.0  # only bounds a hang
        while self._pid(port) != proc.pid:
            if proc.poll() is not None:
                self.proc = None
                return False
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.02)
        return True

    def _pid(self, port: int) -> int | None:
        """The process id of the server answering on `port` (None: none answers)."""
        info = _ask(port, (b"INFO", b"server"), 1.0)
        for line in (info or b"").splitlines():
            if line.startswith(b"process_id:"):
                return int(line.split(b":", 1)[1])
        return None

    def command(self, *words: bytes) -> bytes | None:
        """One command over a plain socket; its first reply line, or None
        when the server does not answer (not up yet, or gone)."""
        reply = _ask(self.port, words, ANSWER_BOUND)
        return None if reply is None else reply.split(b"\r\n", 1)[0]

    def flush(self) -> None:
        """Empty every database: the next test starts from nothing."""
        assert self.command(b"FLUSHALL") == b"+OK", "redis-server did not flush"

    def stop(self) -> None:
        """Stop at once (SIGKILL): tests use it to show what a lost Redis does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


def _ask(port: int, words: Sequence[bytes], timeout: float) -> bytes | None:
    """Send one command to 127.0.0.1:`port`; its reply (a bulk string's
    body, else the first line), or None if nothing answers in `timeout`."""
    request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(request)
            reply = conn.makefile("rb")
            first = reply.readline().rstrip(b"\r\n")
            if first.startswith(b"$") and int(first[1:]) >= 0:
                return reply.read(int(first[1:]))
            return first
    except OSError:
        return None
