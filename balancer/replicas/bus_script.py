"""The event bus's writes of one send-loop batch, as ONE script call, and
the pub/sub messages it publishes.

A batch is a list of ops, applied in order by `BATCH`, atomically: a
client's frame kept in its stream and published (`log`), a frame only
published (`pub`), a key set or removed (`set`, `del`: node hints), and the
journal's marks (`see`), replays (`replay`) and reads of a whole
stream (`range`, told.py), journal.py. Each op
has one result, in order. One call per batch, where each frame was one
script call (and each pipeline with scripts one `SCRIPT EXISTS` more).

The frames of consecutive ops for one channel go out as one message:
`<sender>\\n`, then for each frame `<entry> <length>\\n<frame>` (`entry` its
id in its client's stream, `-` when it is not kept). Runs for one channel are
published in the order of the ops, so a subscriber gets the frames in the
order they were queued. The sender comes first so that a replica, which
gets its own messages back on the channels it listens to, drops them
unread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNKEPT = b"-"  # a frame's entry when it is not kept in a client's stream

# ARGV: sender, maxlen of a stream, ttl of a stream and its mark; then the
# ops, each its name and its arguments. KEYS: the ops' keys, in order.
BATCH = """
local sender, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3]

local function newer(a, b)
  if not b then return true end
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end

local channel, parts = false, {}
local function publish()
  if channel then redis.call('PUBLISH', channel, table.concat(parts)) end
end
local function frame(to, entry, message)
  if to ~= channel then
    publish()
    channel, parts = to, {sender, '\\n'}
  end
  parts[#parts + 1] = entry .. ' ' .. #message .. '\\n'
  parts[#parts + 1] = message
end

local out, k, a = {}, 1, 4
while a <= #ARGV do
  local op, result = ARGV[a], 1
  if op == 'log' then  -- KEYS log, seen; channel, frame, '1' when handed here
    result = redis.call('XADD', KEYS[k], 'MAXLEN', '~', maxlen, '*', 'm', ARGV[a + 2])
    redis.call('EXPIRE', KEYS[k], ttl)
    if ARGV[a + 3] == '1' then redis.call('SET', KEYS[k + 1], result, 'EX', ttl) end
    frame(ARGV[a + 1], result, ARGV[a + 2])
    k, a = k + 2, a + 4
  elseif op == 'pub' then  -- channel, frame
    frame(ARGV[a + 1], '-', ARGV[a + 2])
    a = a + 3
  elseif op == 'set' then  -- KEYS key; value, ttl
    redis.call('SET', KEYS[k], ARGV[a + 1], 'EX', ARGV[a + 2])
    k, a = k + 1, a + 3
  elseif op == 'del' then  -- KEYS key
    redis.call('DEL', KEYS[k])
    k, a = k + 1, a + 1
  elseif op == 'see' then  -- KEYS seen; entry. Forward only.
    if newer(ARGV[a + 1], redis.call('GET', KEYS[k])) then
      redis.call('SET', KEYS[k], ARGV[a + 1], 'EX', ttl)
    end
    k, a = k + 1, a + 2
  elseif op == 'replay' then  -- KEYS log, seen. The entries after the mark.
    local seen = redis.call('GET', KEYS[k + 1])
    local start = '-'
    if seen then start = '(' .. seen end
    result = redis.call('XRANGE', KEYS[k], start, '+')
    k, a = k + 2, a + 1
  elseif op == 'range' then  -- KEYS log. Its every entry.
    result = redis.call('XRANGE', KEYS[k], '-', '+')
    k, a = k + 1, a + 1
  else
    return redis.error_reply('unknown bus op ' .. tostring(op))
  end
  out[#out + 1] = result
end
publish()
return out
"""

Arg = str | bytes | int


@dataclass
class Ops:
    """The ops of one batch, as `BATCH` takes them."""

    keys: list[str] = field(default_factory=list)
    args: list[Arg] = field(default_factory=list)
    count: int = 0

    def add(self, op: str, keys: list[str], *args: Arg) -> None:
        self.keys += keys
        self.args += [op, *args]
        self.count += 1


def frames_of(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The (entry, frame) pairs of a message `BATCH` published, without its
    sender line; a malformed rest is dropped."""
    _, _, rest = raw.partition(b"\n")
    found, at, size = [], 0, len(rest)
    while at < size:
        end_of_head = rest.find(b"\n", at)
        entry, _, length = rest[at:end_of_head].partition(b" ")
        if end_of_head < 0 or not length.isdigit():
            break
        start = end_of_head + 1
        at = start + int(length)
        if at > size:
            break
        found.append((entry, rest[start:at]))
    return found
