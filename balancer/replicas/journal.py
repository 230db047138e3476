"""Each client's job events, kept a while in Redis so that a client that
reconnects, to any replica, gets the ones it missed while it had no socket.

A client's job events (text frames; not previews, which are large and stale
at once, nor the pool-wide `status`, stale at once too) go to a stream per
sid, `<prefix>ws:log:<sid>`, capped at about `KEEP_FRAMES` entries and kept
`KEEP_FOR` seconds after the last one, in the same script that publishes
them (bus_script.py: one call per batch of the event bus's writes): the
stream's order is the order the replicas hear them in.
Beside it, `<prefix>ws:seen:<sid>` is the last entry some socket of that
sid was written, which only grows, and only once the frame was written:

- the publishing replica sets it in that same script when a socket of the
  sid on that replica got the frame (it writes first, then publishes);
- a replica that gets another's frames for a socket of its own (one
  message, those of one batch) writes them, then sets it to the last one
  written (`Seen`);
- a socket that opens asks for every entry after it (`Replay`), gets those
  entries before anything newer, then sets it to the last one written.

So nothing is recorded as handed that no socket was written: a frame whose
sockets all closed before it was written, or that came while the client had
no socket, is replayed to the next one, on any replica. A socket gets each
frame at most once (the hub keeps the last entry each socket was written);
the cost is that a client that reconnects elsewhere within the round trip
between a write and its mark gets those frames again on its new socket,
rather than lose them. A replica killed in that round trip repeats them to
the next socket too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from balancer.replicas.bus_script import Ops

LOG, SEEN = "ws:log:", "ws:seen:"  # after the store's prefix
KEEP_FRAMES = 1000  # about, per client (XADD MAXLEN ~)
KEEP_FOR = 600  # seconds after a client's last frame


def entry_key(entry: str) -> tuple[int, int]:
    """A stream entry id ("<ms>-<seq>") as a comparable pair."""
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


class Journal:
    """The per-client streams and marks of one pool (one `store.prefix`)."""

    def __init__(self, prefix: str) -> None:
        self.log, self.seen = prefix + LOG, prefix + SEEN

    def publish(self, sid: str, channel: str, message: bytes, handed: bool) -> Logged:
        return Logged(self, sid, channel, message, handed)

    def see(self, sid: str, entry: str) -> Seen:
        return Seen(self, sid, entry)

    def replay(self, sid: str, then: Callable[[list[tuple[str, bytes]]], None]) -> Replay:
        return Replay(self, sid, then)


@dataclass(frozen=True, eq=False)
class Logged:
    """A client's frame, kept and published in the batch's script (bus.Write)."""

    journal: Journal
    sid: str
    channel: str
    message: bytes
    handed: bool  # a socket of the sid on this replica was written it

    def add(self, ops: Ops) -> None:
        j = self.journal
        keys = [j.log + self.sid, j.seen + self.sid]
        ops.add("log", keys, self.channel, self.message, "1" if self.handed else "0")

    def applied(self, results: list[Any]) -> None:
        """Nothing waits on a frame."""


@dataclass(frozen=True, eq=False)
class Seen:
    """Frames of `sid` written to a socket here, up to `entry`: recorded as
    handed (bus.Write)."""

    journal: Journal
    sid: str
    entry: str

    def add(self, ops: Ops) -> None:
        ops.add("see", [self.journal.seen + self.sid], self.entry)

    def applied(self, results: list[Any]) -> None:
        """Nothing waits on a mark."""


@dataclass(frozen=True, eq=False)
class Replay:
    """What a socket that opens missed: the sid's entries after the last one
    handed, then (`then`) written and recorded as handed (bus.Write)."""

    journal: Journal
    sid: str
    then: Callable[[list[tuple[str, bytes]]], None]

    def add(self, ops: Ops) -> None:
        j = self.journal
        ops.add("replay", [j.log + self.sid, j.seen + self.sid])

    def applied(self, results: list[Any]) -> None:
        self.then([(_text(entry), message_of(fields)) for entry, fields in results[0]])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def message_of(fields: Any) -> bytes:
    """The `m` field of an entry (XRANGE gives [name, value, ...])."""
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    raw = pairs.get(b"m", pairs.get("m", b""))
    return raw if isinstance(raw, bytes) else str(raw).encode()
