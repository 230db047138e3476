"""The Lua scripts of the Redis user-data store (`redis_store.py`): each
change of one user's files is one script, so two replicas writing the same
user's files never leave the index and the contents apart.

Keys, under ARGV[1] (`<store.prefix>userdata:<user>:`):
- `index`   hash: path -> "size modified created"
- `f:<path>` a file's bytes
- `root`    set once the user's directory exists (GET /users `migrated`)
"""

from __future__ import annotations

# A path that is a folder (some file under it), or that lies under a file.
_CONFLICT = """
local function conflict(index, rel)
  local below = rel .. '/'
  for _, n in ipairs(redis.call('HKEYS', index)) do
    if string.sub(n, 1, #below) == below then return 'dir' end
    if string.sub(rel, 1, #n + 1) == n .. '/' then return 'under_file' end
  end
  return false
end
"""

# ARGV: user prefix, path, bytes, now. Answers 'ok', 'dir' or 'under_file'.
WRITE = (
    _CONFLICT
    + """
local u, rel = ARGV[1], ARGV[2]
local refused = conflict(u .. 'index', rel)
if refused then return refused end
redis.call('SET', u .. 'f:' .. rel, ARGV[3])
redis.call('HSET', u .. 'index', rel, #ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[4])
redis.call('SET', u .. 'root', '1')
return 'ok'
"""
)

# ARGV: user prefix, source, dest, now: a file, or a folder with every file
# under it. Answers 'ok', 'missing', 'dir' or 'under_file' (nothing moved).
MOVE = (
    _CONFLICT
    + """
local u, src, dest, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local index = u .. 'index'
local pairs_ = {}
if redis.call('HEXISTS', index, src) == 1 then
  pairs_[1] = {src, dest}
else
  local below = src .. '/'
  if string.sub(dest, 1, #below) == below then return 'under_file' end
  for _, n in ipairs(redis.call('HKEYS', index)) do
    if string.sub(n, 1, #below) == below then
      pairs_[#pairs_ + 1] = {n, dest .. string.sub(n, #src + 1)}
    end
  end
end
if #pairs_ == 0 then return 'missing' end
for _, pair in ipairs(pairs_) do
  local refused = conflict(index, pair[2])
  if refused then return refused end
end
for _, pair in ipairs(pairs_) do
  local meta = redis.call('HGET', index, pair[1])
  local size, modified = string.match(meta, '^(%S+) (%S+)')
  redis.call('HDEL', index, pair[1])
  redis.call('RENAME', u .. 'f:' .. pair[1], u .. 'f:' .. pair[2])
  redis.call('HSET', index, pair[2], size .. ' ' .. modified .. ' ' .. now)
end
return 'ok'
"""
)

# ARGV: user prefix, path.
DELETE = """
local u, rel = ARGV[1], ARGV[2]
redis.call('HDEL', u .. 'index', rel)
redis.call('UNLINK', u .. 'f:' .. rel)
return 1
"""

# ARGV: users prefix, the name as sent, the name kept, a new id. Answers
# the id, or false for a duplicate name.
ADD_USER = """
local p = ARGV[1]
if redis.call('HEXISTS', p .. 'usernames', ARGV[2]) == 1 then return false end
redis.call('HSET', p .. 'usernames', ARGV[3], ARGV[4])
redis.call('HSET', p .. 'users', ARGV[4], ARGV[3])
return ARGV[4]
"""
