"""The Lua scripts of the Redis upload store (`redis_uploads.py`): each
change of the shared index is one script, so two replicas never name two
uploads alike, never count a blob twice, and never evict past each other.

Keys, all under ARGV[1] (`<store.prefix>uploads:`):
- `names`      hash: `type/sub/name` -> sha256
- `refs:<sha>` set: the names that point at a blob
- `sizes`      hash: sha256 -> bytes
- `touched`    sorted set: sha256 by last use (the replicas' wall clock)
- `total`      the bytes of every blob together
- `blob:<sha>` hash: chunk number -> at most 512 KiB of the blob
- `part:<tok>` a blob being written (expires if its writer dies)
- `holders`    sorted set: each replica's upload store by when its hold ends
- `held:<id>`  set: the blobs that replica's prompts need (its last pass)
"""

from __future__ import annotations

# ARGV: prefix, sha, size, now; KEYS[1]: the blob as written (`part:<tok>`),
# absent for an empty blob. Answers 1 (stored), 0 (already there: the part
# is dropped) or -1 (the part expired before it was adopted).
ADOPT = """
local p, sha, size = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('HEXISTS', p .. 'sizes', sha) == 1 then
  if KEYS[1] then redis.call('UNLINK', KEYS[1]) end
  redis.call('ZADD', p .. 'touched', ARGV[4], sha)
  return 0
end
if size > 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
  redis.call('RENAME', KEYS[1], p .. 'blob:' .. sha)
  redis.call('PERSIST', p .. 'blob:' .. sha)
end
redis.call('HSET', p .. 'sizes', sha, size)
redis.call('ZADD', p .. 'touched', ARGV[4], sha)
redis.call('INCRBY', p .. 'total', size)
return 1
"""

# ARGV: prefix, type, subfolder, stem, ext, name, sha, overwrite ('1'), now.
# ComfyUI's naming (same bytes keep the name, other bytes get `stem (n)ext`),
# pool-wide. Answers the final name, or false when the blob is gone.
ASSIGN = """
local p, kind, sub, stem, ext, name, sha = unpack(ARGV, 1, 7)
if redis.call('HEXISTS', p .. 'sizes', sha) == 0 then return false end
local function field(n)
  if sub == '' then return kind .. '/' .. n end
  return kind .. '/' .. sub .. '/' .. n
end
local final, counter = name, 1
if ARGV[8] ~= '1' then
  while true do
    local existing = redis.call('HGET', p .. 'names', field(final))
    if not existing or existing == sha then break end
    final = stem .. ' (' .. counter .. ')' .. ext
    counter = counter + 1
  end
end
local f = field(final)
local old = redis.call('HGET', p .. 'names', f)
if old ~= sha then
  if old then redis.call('SREM', p .. 'refs:' .. old, f) end
  redis.call('HSET', p .. 'names', f, sha)
  redis.call('SADD', p .. 'refs:' .. sha, f)
end
redis.call('ZADD', p .. 'touched', ARGV[9], sha)
return final
"""

# ARGV: prefix, now, cutoff, max_bytes, the caller's holder id, until when
# its hold lasts, then the shas the caller's prompts need now (its hold,
# replacing its last one). Every live holder's shas stay. Oldest first, a
# blob not held goes while it is older than the cutoff or the store is over
# max_bytes. Answers the evicted shas.
EVICT = """
local p, now, cutoff, cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local holders = p .. 'holders'
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', holders, '-inf', '(' .. now)) do
  redis.call('UNLINK', p .. 'held:' .. gone)
end
redis.call('ZREMRANGEBYSCORE', holders, '-inf', '(' .. now)
local mine = p .. 'held:' .. ARGV[5]
redis.call('UNLINK', mine)
for i = 7, #ARGV do redis.call('SADD', mine, ARGV[i]) end
redis.call('ZADD', holders, ARGV[6], ARGV[5])
local sets = {}
for _, id in ipairs(redis.call('ZRANGE', holders, 0, -1)) do
  sets[#sets + 1] = p .. 'held:' .. id
end
local function held(sha)
  for _, set in ipairs(sets) do
    if redis.call('SISMEMBER', set, sha) == 1 then return true end
  end
  return false
end
local total = tonumber(redis.call('GET', p .. 'total')) or 0
local evicted, index = {}, 0
while true do
  local row = redis.call('ZRANGE', p .. 'touched', index, index, 'WITHSCORES')
  if #row == 0 then break end
  local sha, touched = row[1], tonumber(row[2])
  if held(sha) then
    index = index + 1
  else
    if touched >= cutoff and total <= cap then break end
    for _, f in ipairs(redis.call('SMEMBERS', p .. 'refs:' .. sha)) do
      if redis.call('HGET', p .. 'names', f) == sha then redis.call('HDEL', p .. 'names', f) end
    end
    total = total - (tonumber(redis.call('HGET', p .. 'sizes', sha)) or 0)
    redis.call('UNLINK', p .. 'refs:' .. sha, p .. 'blob:' .. sha)
    redis.call('HDEL', p .. 'sizes', sha)
    redis.call('ZREM', p .. 'touched', sha)
    evicted[#evicted + 1] = sha
  end
end
redis.call('SET', p .. 'total', total)
return evicted
"""
