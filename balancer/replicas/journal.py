"""Each client's job events, kept a while in Redis so that a client that
reconnects, to any replica, gets the ones it missed while it had no socket.

A client's job events (text frames; not previews, which are large and stale
at once, nor the pool-wide `status`, stale at once too) go to a stream per
sid, `<prefix>ws:log:<sid>`, capped at about `KEEP_FRAMES` entries and kept
`KEEP_FOR` seconds after the last one, in the same script that publishes
them (bus.py): the stream's order is the order the replicas hear them in.
Beside it, `<prefix>ws:seen:<sid>` is the last entry some socket of that
sid was handed, which only grows:

- the publishing replica sets it in that same script when a socket of the
  sid on that replica got the frame (it writes first, then publishes);
- a replica that gets another's frame for a socket of its own sets it,
  and writes the frame once Redis applied that (`Seen`);
- a socket that opens asks, in one script, for every entry after it and
  moves it to the last of them (`Replay`), then gets those entries before
  anything newer.

So a frame is written to a socket at most once, and a frame that no socket
was handed is replayed to the next one. A frame recorded as handed whose
sockets all closed before it was written moves the mark back (`Unsee`), so
the next socket gets it. The cost of at most once: a replica killed between
recording a frame handed and writing it loses that frame (a round trip's
window), rather than repeat it to the next socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

LOG, SEEN = "ws:log:", "ws:seen:"  # after the store's prefix
KEEP_FRAMES = 1000  # about, per client (XADD MAXLEN ~)
KEEP_FOR = 600  # seconds after a client's last frame

# KEYS: log, seen. ARGV: channel, message, maxlen, ttl, "1" when a socket
# of the sid on the publishing replica was written the frame.
PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], id, 'EX', ARGV[4]) end
redis.call('PUBLISH', ARGV[1], id .. '\\n' .. ARGV[2])
return id
"""

NEWER = """
local function newer(a, b)
  if not b then return true end
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
"""

# KEYS: seen. ARGV: entry, ttl. Moves `seen` forward only; the mark before.
SEE = (
    NEWER
    + """
local old = redis.call('GET', KEYS[1])
if newer(ARGV[1], old) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return old
"""
)

# KEYS: seen. ARGV: entry, mark before it ('' none), ttl. Moves `seen` back
# from `entry` (handed to a socket that closed before it was written), if
# nothing newer was handed since.
UNSEE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1])
  else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
end
return 1
"""

# KEYS: log, seen. ARGV: ttl. The entries after `seen` (all, without it),
# `seen` moved to the last of them.
REPLAY = (
    NEWER
    + """
local seen = redis.call('GET', KEYS[2])
local start = '-'
if seen then start = '(' .. seen end
local entries = redis.call('XRANGE', KEYS[1], start, '+')
if #entries > 0 then
  local last = entries[#entries][1]
  if newer(last, redis.call('GET', KEYS[2])) then
    redis.call('SET', KEYS[2], last, 'EX', ARGV[1])
  end
end
return entries
"""
)


def entry_key(entry: str) -> tuple[int, int]:
    """A stream entry id ("<ms>-<seq>") as a comparable pair."""
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


def _eval(pipe: Pipeline, script: AsyncScript, keys: list[str], args: list[Any]) -> None:
    scripts: set[Any] = pipe.scripts  # loaded before the pipeline runs, if Redis lacks them
    scripts.add(script)
    pipe.evalsha(script.sha, len(keys), *keys, *args)


class Journal:
    """The per-client streams and marks of one pool (one `store.prefix`)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.log, self.seen = prefix + LOG, prefix + SEEN
        self._publish = redis.register_script(PUBLISH)
        self._see = redis.register_script(SEE)
        self._replay = redis.register_script(REPLAY)
        self._unsee = redis.register_script(UNSEE)

    def publish(self, sid: str, channel: str, message: bytes, handed: bool) -> Logged:
        return Logged(self, sid, channel, message, handed)

    def see(self, sid: str, entry: str, then: Callable[[str | None], None]) -> Seen:
        return Seen(self, sid, entry, then)

    def unsee(self, sid: str, entry: str, back: str | None, then: Callable[[], None]) -> Unsee:
        return Unsee(self, sid, entry, back, then)

    def replay(self, sid: str, then: Callable[[list[tuple[str, bytes]]], None]) -> Replay:
        return Replay(self, sid, then)


@dataclass(frozen=True, eq=False)
class Logged:
    """A client's frame, logged and published in one script (bus.Write)."""

    journal: Journal
    sid: str
    channel: str
    message: bytes
    handed: bool  # a socket of the sid on this replica was written it

    def add(self, pipe: Pipeline) -> None:
        j = self.journal
        keys = [j.log + self.sid, j.seen + self.sid]
        args = [self.channel, self.message, KEEP_FRAMES, KEEP_FOR, "1" if self.handed else "0"]
        _eval(pipe, j._publish, keys, args)

    def applied(self, results: list[Any]) -> None:
        """Nothing waits on a frame."""


@dataclass(frozen=True, eq=False)
class Seen:
    """Another replica's frame for a socket here: recorded as handed, then
    (`then`) written (bus.Write)."""

    journal: Journal
    sid: str
    entry: str
    then: Callable[[str | None], None]  # given the mark before

    def add(self, pipe: Pipeline) -> None:
        j = self.journal
        _eval(pipe, j._see, [j.seen + self.sid], [self.entry, KEEP_FOR])

    def applied(self, results: list[Any]) -> None:
        self.then(None if results[0] is None else _text(results[0]))


@dataclass(frozen=True, eq=False)
class Unsee:
    """A frame recorded as handed whose sockets here all closed before it
    was written: the mark goes back to `back` (bus.Write)."""

    journal: Journal
    sid: str
    entry: str
    back: str | None
    then: Callable[[], None]

    def add(self, pipe: Pipeline) -> None:
        j = self.journal
        _eval(pipe, j._unsee, [j.seen + self.sid], [self.entry, self.back or "", KEEP_FOR])

    def applied(self, results: list[Any]) -> None:
        self.then()


@dataclass(frozen=True, eq=False)
class Replay:
    """What a socket that opens missed: the sid's entries after the last one
    handed, marked handed, then (`then`) written (bus.Write)."""

    journal: Journal
    sid: str
    then: Callable[[list[tuple[str, bytes]]], None]

    def add(self, pipe: Pipeline) -> None:
        j = self.journal
        _eval(pipe, j._replay, [j.log + self.sid, j.seen + self.sid], [KEEP_FOR])

    def applied(self, results: list[Any]) -> None:
        self.then([(_text(entry), _message(fields)) for entry, fields in results[0]])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _message(fields: Any) -> bytes:
    """The `m` field of an entry (XRANGE gives [name, value, ...])."""
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    raw = pairs.get(b"m", pairs.get("m", b""))
    return raw if isinstance(raw, bytes) else str(raw).encode()
