"""Browser sessions: a signed cookie naming a key, never holding it.

The cookie is `v1.<key name>.<expires>.<id>.<signature>`, the signature an
HMAC-SHA256 (the session secret) over the name, the expiry, the id, and the
key's current digest and scope. Nothing is stored per session, so replicas
sharing the secret accept each other's cookies; removing or changing a key
(a reload) ends its sessions at once, because the digest they were signed
over is gone. Signing out revokes that session's id in this process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from balancer.auth.principal import KeyRing
from balancer.config.access_settings import ApiKey, AuthSettings

COOKIE = "comfyui_balancer_session"
SECRET_FILE = "session_secret"
VERSION = "v1"
MAX_REVOKED = 100_000
_EXPIRES = re.compile(r"[0-9]{1,12}")

Clock = Callable[[], float]


def stored_secret(data_dir: Path) -> bytes:
    """The secret kept in the data dir, created (mode 0600) on first use."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


@dataclass(frozen=True)
class Issued:
    value: str
    max_age: int


class Sessions:
    """Issues and checks session cookies against the current key ring."""

    def __init__(self, auth: Callable[[], AuthSettings], data_dir: Path, wall: Clock) -> None:
        self.auth = auth
        self.data_dir = data_dir
        self.wall = wall
        self._stored: bytes | None = None
        self._revoked: dict[str, float] = {}

    def _secret(self) -> bytes:
        configured = self.auth().session_secret
        if configured is not None:
            return configured
        if self._stored is None:
            self._stored = stored_secret(self.data_dir)
        return self._stored

    def _sign(self, key: ApiKey, expires: str, sid: str) -> str:
        message = "|".join((VERSION, key.name, key.scope, expires, sid)).encode() + key.sha256
        mac = hmac.new(self._secret(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def issue(self, key: ApiKey) -> Issued:
        ttl = self.auth().session_ttl
        expires, sid = str(int(self.wall() + ttl)), secrets.token_urlsafe(12)
        value = ".".join((VERSION, key.name, expires, sid, self._sign(key, expires, sid)))
        return Issued(value, int(ttl))

    def verify(self, value: str, ring: KeyRing) -> ApiKey | None:
        """The key a cookie speaks for, or None (malformed, expired, tampered,
        revoked, or its key removed or changed)."""
        parts = value.split(".")
        if len(parts) != 5 or parts[0] != VERSION or not _EXPIRES.fullmatch(parts[2]):
            return None
        _, name, expires, sid, signature = parts
        key = ring.named(name)
        if key is None or int(expires) <= self.wall() or sid in self._revoked:
            return None
        expected = self._sign(key, expires, sid)
        return key if hmac.compare_digest(signature.encode(), expected.encode()) else None

    def revoke(self, value: str, ring: KeyRing) -> None:
        """Sign-out: this session's id stops working here before it expires."""
        if self.verify(value, ring) is None:
            return
        parts = value.split(".")
        now = self.wall()
        self._revoked = {s: t for s, t in self._revoked.items() if t > now}
        if len(self._revoked) < MAX_REVOKED:
            self._revoked[parts[3]] = float(parts[2])
