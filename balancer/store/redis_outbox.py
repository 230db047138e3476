"""The Redis store's webhook outbox (outbox.py), shared by every replica.

Keys (under the store's prefix `P`):
- `P owed`         zset of owed webhooks' keys, scored by when their hold lapses;
- `P owed:<key>`   hash prompt_id, url, body, holder.

The move that ends a job writes its entry in the same script as the move
(`TRANSITION_OWING`: the store's TRANSITION, with the entry's six values
taken off the end of its arguments first), and only when that move applies
now (a retried call that already applied wrote it then). A claim is one
script, so of two replicas sweeping at once one takes each entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from balancer.store import redis_scripts as lua
from balancer.store.outbox import Owed

OWED_ARGS = 6  # key, prompt_id, url, body, holder, until

_PUT = """
local function put_owed(o)
  redis.call('HSET', P .. 'owed:' .. o[1], 'prompt_id', o[2], 'url', o[3], 'body', o[4],
             'holder', o[5])
  redis.call('ZADD', P .. 'owed', o[6], o[1])
end
"""

# The store's TRANSITION (same arguments), followed by the owed entry's.
TRANSITION_OWING = (
    _PUT
    + "local OWED = {}\n"
    + f"for i = {OWED_ARGS}, 1, -1 do OWED[i] = table.remove(ARGV) end\n"
    + "local fresh = redis.call('HGET', KEYS[1], 'token') ~= ARGV[3]\n"
    + "local function transition()\n"
    + lua.TRANSITION
    + "\nend\n"
    + """
local moved = transition()
if moved and fresh then put_owed(OWED) end
return moved
"""
)

# ARGV: prefix, holder, now, until, mine ('1'). Answers {key, fields} per entry taken.
CLAIM = """
local holder, held_to, mine = ARGV[2], ARGV[4], ARGV[5] == '1'
local keys = redis.call('ZRANGEBYSCORE', P .. 'owed', '-inf', ARGV[3])
if mine then
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', P .. 'owed', '(' .. ARGV[3], '+inf')) do
    if redis.call('HGET', P .. 'owed:' .. key, 'holder') == holder then keys[#keys + 1] = key end
  end
end
local out = {}
for _, key in ipairs(keys) do
  redis.call('ZADD', P .. 'owed', held_to, key)
  redis.call('HSET', P .. 'owed:' .. key, 'holder', holder)
  out[#out + 1] = {key, redis.call('HGETALL', P .. 'owed:' .. key)}
end
return out
"""

# ARGV: prefix, key, holder, until. Answers 1 (held) or 0.
HOLD = """
if redis.call('HGET', P .. 'owed:' .. ARGV[2], 'holder') ~= ARGV[3] then return 0 end
redis.call('ZADD', P .. 'owed', 'XX', ARGV[4], ARGV[2])
return 1
"""

# ARGV: prefix, key.
SETTLE = """
redis.call('DEL', P .. 'owed:' .. ARGV[2])
redis.call('ZREM', P .. 'owed', ARGV[2])
return 1
"""


def owed_args(owed: Owed) -> list[str | bytes | float]:
    return [owed.key, owed.prompt_id, owed.url, owed.body, owed.holder, owed.until]


def claimed(rows: Sequence[Any], until: float) -> list[Owed]:
    """CLAIM's answer as entries (one missing its hash, lost with a Redis
    that forgot part of its data, is left out)."""
    out = []
    for key, flat in rows:
        raw = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        if {"prompt_id", "url", "body", "holder"} <= raw.keys():
            out.append(
                Owed(
                    key.decode(),
                    raw["prompt_id"].decode(),
                    raw["url"].decode(),
                    raw["body"],
                    raw["holder"].decode(),
                    until,
                )
            )
    return out
