"""How jobs, pins and kept history rows are written to and read from Redis
hashes and script replies. A record that cannot be read is named in a log
line and left alone (None), never fatal."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any

from balancer.logs import get_logger
from balancer.store.kept import Raw
from balancer.store.model import Pin, StoredJob

log = get_logger("balancer.store")

JOB_FIELDS = tuple(f.name for f in fields(StoredJob))
Arg = str | bytes | int | float


def skipped(table: str, key: object, exc: Exception) -> None:
    """A record that cannot be read is left alone and named, never fatal."""
    log.warning("store_row_skipped", table=table, key=str(key), error=type(exc).__name__)


def _encode(name: str, value: Any) -> Arg:
    if name not in JOB_FIELDS:
        raise TypeError(f"StoredJob has no field {name!r}")
    return value if name == "answer" else json.dumps(value)


def job_args(values: Mapping[str, Any]) -> list[Arg]:
    """Job fields as a script's flat name, value arguments."""
    return [part for name, v in values.items() for part in (name, _encode(name, v))]


def _pairs(flat: Sequence[bytes]) -> dict[str, bytes]:
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def job_of(prompt_id: str, flat: Sequence[bytes]) -> StoredJob | None:
    """A job hash, or None (logged with its key) when it cannot be read.
    Fields this version does not know (the write's token, or one a newer
    replica added during a rolling upgrade) are left out, not fatal: scripts
    write a job field by field, so they stay in the hash for their readers."""
    raw = _pairs(flat)
    if not raw:
        return None
    try:
        data: dict[str, Any] = {
            k: v if k == "answer" else json.loads(v) for k, v in raw.items() if k in JOB_FIELDS
        }
        for key in ("lost_from", "duplicates"):
            data[key] = tuple(data.get(key, ()))
        return StoredJob(**data)
    except (ValueError, TypeError) as exc:
        skipped("jobs", prompt_id, exc)
        return None


def pin_of(prompt_id: str, flat: Sequence[bytes]) -> Pin | None:
    """A pin hash, or None (logged with its key) when it cannot be read."""
    raw = _pairs(flat)
    if not raw:
        return None
    try:
        return Pin(
            prompt_id,
            raw["backend"].decode(),
            raw["digest"].decode(),
            raw["answer"],
            json.loads(raw["client_id"]),
            json.loads(raw["tenant"]),
        )
    except (KeyError, ValueError) as exc:
        skipped("pins", prompt_id, exc)
        return None


def new_token() -> str:
    """A write's own id: a retried write that already applied is recognised."""
    return secrets.token_hex(8)


def flat(reply: Mapping[Any, Any]) -> list[bytes]:
    """HGETALL's dict as the flat list a script answers."""
    return [part for pair in reply.items() for part in pair]


def raw_rows(rows: Sequence[Sequence[bytes]]) -> Iterator[Raw]:
    """Kept history rows (start, prompt_id, entry text) as KeptHistory reads them."""
    for start, prompt_id, text in rows:
        yield float(start), prompt_id.decode(), text.decode()
