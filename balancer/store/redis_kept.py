"""The Redis store's kept history (kept.py): its Lua scripts, each run with
the store's PRELUDE (redis_scripts.py) in front, whose `drop_pin`,
`drop_job` and `TERMINAL` they use.

Keys (under the store's prefix `P`):
- `P history`        zset of kept entries: score the start time, member
                     `<arrival:020d>:<id>` (ties in arrival order, as KeptHistory);
- `P entries`, `P members`  hashes id -> entry JSON, id -> its zset member;
- `P histlog`        list of the ids whose kept entry changed (put, removed,
                     pushed out), one per change, the newest HISTORY_LOG kept;
- `P histlogseq`     how many changes were ever logged (the last one's number);
- `P histlife`       a token set with the first change: a reader that cached
                     changes up to some number reads only the ones after it,
                     unless the life changed (an emptied Redis counts from 0 again)
                     or the log no longer reaches back that far (it reads all).
"""

from __future__ import annotations

HISTORY_LOG = 2000  # changes of kept history a reader can catch up on

_FORGET = f"""
local function logged(id)
  redis.call('SET', P .. 'histlife', ARGV[#ARGV], 'NX')
  redis.call('INCR', P .. 'histlogseq')
  redis.call('RPUSH', P .. 'histlog', id)
  redis.call('LTRIM', P .. 'histlog', -{HISTORY_LOG}, -1)
end

local function forget(id)
  local member = redis.call('HGET', P .. 'members', id)
  if not member then return false end
  redis.call('ZREM', P .. 'history', member)
  redis.call('HDEL', P .. 'members', id)
  redis.call('HDEL', P .. 'entries', id)
  logged(id)
  return true
end
"""

_EXPIRE = """
local function drop_entry(member)
  local gone = string.sub(member, 22)
  forget(gone)
  drop_pin(gone)
  -- an ended job goes with its entry (found near the head of `ended`: the
  -- oldest entries go first, and their jobs ended among the first)
  if TERMINAL[redis.call('HGET', P .. 'job:' .. gone, 'state') or ''] then
    redis.call('LREM', P .. 'ended', 1, gone)
    drop_job(gone)
  end
end

-- Entries past `keep`, and those that started before `cutoff` (ms; '-inf'
-- for no age limit), go with their pins and ended jobs.
local function expire(keep, cutoff)
  local excess = redis.call('ZCARD', P .. 'history') - keep
  if excess > 0 then
    for _, old in ipairs(redis.call('ZRANGE', P .. 'history', 0, excess - 1)) do
      drop_entry(old)
    end
  end
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', P .. 'history', '-inf', '(' .. cutoff)) do
    drop_entry(old)
  end
end
"""

# ARGV: prefix, id, start time, entry JSON, keep, cutoff, life token (if the first).
# Entries pushed out or expired lose their pins and ended jobs too.
PUT_HISTORY = (
    _FORGET
    + _EXPIRE
    + """
local id, keep = ARGV[2], tonumber(ARGV[5])
forget(id)
local member = string.format('%020d:%s', redis.call('INCR', P .. 'histseq'), id)
redis.call('ZADD', P .. 'history', ARGV[3], member)
redis.call('HSET', P .. 'members', id, member)
redis.call('HSET', P .. 'entries', id, ARGV[4])
expire(keep, ARGV[6])
logged(id)
return 1
"""
)

# ARGV: prefix, keep, cutoff, life token (if the first).
EXPIRE_HISTORY = (
    _FORGET
    + _EXPIRE
    + """
expire(tonumber(ARGV[2]), ARGV[3])
return 1
"""
)

# ARGV: prefix, id, life token (if the first).
REMOVE_HISTORY = (
    _FORGET
    + """
forget(ARGV[2])
return 1
"""
)

# ARGV: prefix, the reader's life token, the number of the last change it has.
# Answers {life, number of the last change, 'same' | 'all' | 'since', rows}:
# nothing new; every entry as (start, id, JSON), oldest first; or each id
# changed since, once, in the order of its last change, as (start, id, JSON)
# or ('', id, false) when it is gone.
HISTORIES = """
local life = redis.call('GET', P .. 'histlife') or ''
local last = tonumber(redis.call('GET', P .. 'histlogseq') or '0')
local since = tonumber(ARGV[3])
local out = {}
if life == ARGV[2] and since == last then return {life, last, 'same', out} end
local logged = redis.call('LLEN', P .. 'histlog')
if life ~= ARGV[2] or since > last or last - since > logged then
  local members = redis.call('ZRANGE', P .. 'history', 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local id = string.sub(members[i], 22)
    out[#out + 1] = {members[i + 1], id, redis.call('HGET', P .. 'entries', id)}
  end
  return {life, last, 'all', out}
end
local ids = redis.call('LRANGE', P .. 'histlog', logged - (last - since), -1)
local at = {}
for i, id in ipairs(ids) do at[id] = i end
for i, id in ipairs(ids) do
  if at[id] == i then
    local member = redis.call('HGET', P .. 'members', id)
    if member then
      out[#out + 1] = {redis.call('ZSCORE', P .. 'history', member), id,
                       redis.call('HGET', P .. 'entries', id)}
    else
      out[#out + 1] = {'', id, false}
    end
  end
end
return {life, last, 'since', out}
"""
