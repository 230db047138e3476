"""The Lua scripts of the Redis store: every write that touches more than one
key runs as one script, so Redis applies it whole or not at all and no other
replica sees it half done.

Keys (all under the store's prefix `P`):
- `P job:<id>`       hash, one field per StoredJob field (JSON; `answer` raw bytes),
                     plus `token`, the id of the last write (see below);
- `P jobs`           zset of every kept job by number (`jobs()`);
- `P unfinished`     zset of unfinished jobs by number;
- `P on:<backend>`   zset of the unfinished jobs a backend holds, by number;
- `P tenants`        hash tenant (JSON, `null` for none) -> unfinished count;
- `P states`         hash state (JSON) -> how many unfinished jobs are in it;
- `P waiting`        hash tenant (JSON) -> how many of its jobs are `waiting`
                     (the tenants whose turn may come, pool-wide: replicas/turn.py);
- `P ended`          list of ended jobs, oldest first, capped like MemoryStore's;
- `P number`         the pool's `number` counter (INCR);
- `P pin:<id>`       hash backend, digest, answer, client_id, tenant;
- `P pins:<backend>` zset of a backend's pins in the order they were written;

The kept history's keys and scripts are in redis_kept.py, the webhook
outbox's in redis_outbox.py; each script runs with PRELUDE in front.

A call that timed out may have run: the client retries it, and a write that
carries a token already applied answers as if it ran now (`create`,
`transition`), so a retry never turns a win into a loss.
"""

from __future__ import annotations

import json

from balancer.store.model import TERMINAL

_TERMINAL = ", ".join(f"[{json.dumps(json.dumps(s))}] = true" for s in sorted(TERMINAL))

# Shared helpers, put in front of every script body.
PRELUDE = f"""
local P = ARGV[1]
local TERMINAL = {{{_TERMINAL}}}

local function value(raw)
  if not raw then return nil end
  local v = cjson.decode(raw)
  if v == cjson.null then return nil end
  return v
end

local function count(hash, field, by)
  if redis.call('HINCRBY', P .. hash, field, by) <= 0 then redis.call('HDEL', P .. hash, field) end
end

local function unindex(id, key)
  local backend = value(redis.call('HGET', key, 'backend'))
  local tenant = redis.call('HGET', key, 'tenant') or 'null'
  local state = redis.call('HGET', key, 'state')
  count('states', state, -1)
  if state == '"waiting"' then count('waiting', tenant, -1) end
  redis.call('ZREM', P .. 'unfinished', id)
  if backend then redis.call('ZREM', P .. 'on:' .. backend, id) end
  count('tenants', tenant, -1)
end

local function index(id, key)
  local number = tonumber(redis.call('HGET', key, 'number'))
  local backend = value(redis.call('HGET', key, 'backend'))
  redis.call('ZADD', P .. 'unfinished', number, id)
  if backend then redis.call('ZADD', P .. 'on:' .. backend, number, id) end
  local tenant = redis.call('HGET', key, 'tenant') or 'null'
  local state = redis.call('HGET', key, 'state')
  redis.call('HINCRBY', P .. 'tenants', tenant, 1)
  redis.call('HINCRBY', P .. 'states', state, 1)
  if state == '"waiting"' then redis.call('HINCRBY', P .. 'waiting', tenant, 1) end
end

local function drop_job(id)
  redis.call('DEL', P .. 'job:' .. id)
  redis.call('ZREM', P .. 'jobs', id)
end

local function ended(id, keep)
  redis.call('RPUSH', P .. 'ended', id)
  while redis.call('LLEN', P .. 'ended') > keep do
    local gone = redis.call('LPOP', P .. 'ended')
    if TERMINAL[redis.call('HGET', P .. 'job:' .. gone, 'state') or ''] then drop_job(gone) end
  end
end

local function drop_pin(id)
  local key = P .. 'pin:' .. id
  local backend = redis.call('HGET', key, 'backend')
  if backend then redis.call('ZREM', P .. 'pins:' .. backend, id) end
  redis.call('DEL', key)
end

local function rows(ids, prefix)
  local out = {{}}
  for i, id in ipairs(ids) do out[i] = {{id, redis.call('HGETALL', P .. prefix .. id)}} end
  return out
end
"""

# KEYS[1] job key; ARGV: prefix, id, token, keep, the tenant's cap on
# unfinished jobs ('' for none), its tenant (JSON), then field/value pairs.
# Answers 1 (created), 0 (the id exists) or -1 (the tenant is at its cap).
CREATE = """
local key, id, token = KEYS[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', key) == 1 then
  return redis.call('HGET', key, 'token') == token and 1 or 0
end
local cap = tonumber(ARGV[5])
if cap and tonumber(redis.call('HGET', P .. 'tenants', ARGV[6]) or '0') >= cap then
  return -1
end
redis.call('HSET', key, 'token', token, unpack(ARGV, 7))
redis.call('ZADD', P .. 'jobs', tonumber(redis.call('HGET', key, 'number')), id)
if TERMINAL[redis.call('HGET', key, 'state')] then ended(id, tonumber(ARGV[4]))
else index(id, key) end
return 1
"""

# KEYS[1] job key; ARGV: prefix, id, token, keep, to_state, n, n from-states,
# then field/value pairs. Answers the job's fields, or false.
TRANSITION = """
local key, id, token, to = KEYS[1], ARGV[2], ARGV[3], ARGV[5]
local state = redis.call('HGET', key, 'state')
if not state then return false end
if redis.call('HGET', key, 'token') == token then return redis.call('HGETALL', key) end
local n = tonumber(ARGV[6])
local allowed = false
for i = 7, 6 + n do if ARGV[i] == state then allowed = true end end
if not allowed then return false end
local was_open = not TERMINAL[state]
if was_open then unindex(id, key) end
redis.call('HSET', key, 'state', to, 'token', token)
if #ARGV > 6 + n then redis.call('HSET', key, unpack(ARGV, 7 + n)) end
redis.call('ZADD', P .. 'jobs', tonumber(redis.call('HGET', key, 'number')), id)
if not TERMINAL[to] then index(id, key)
elseif was_open then ended(id, tonumber(ARGV[4])) end
return redis.call('HGETALL', key)
"""

# KEYS[1] job key; ARGV: prefix, id.
DISCARD = """
local key, id = KEYS[1], ARGV[2]
local state = redis.call('HGET', key, 'state')
if not state then return 0 end
if TERMINAL[state] then redis.call('LREM', P .. 'ended', 1, id) else unindex(id, key) end
drop_job(id)
return 1
"""

# ARGV: prefix, zset name (under P). Answers {id, fields} of each member, in order.
JOBS_IN = """
return rows(redis.call('ZRANGE', P .. ARGV[2], 0, -1), 'job:')
"""

# KEYS[1] pin key; ARGV: prefix, id, then field/value pairs (backend first).
PUT_PIN = """
local id = ARGV[2]
drop_pin(id)
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
local seq = redis.call('INCR', P .. 'pinseq')
redis.call('ZADD', P .. 'pins:' .. redis.call('HGET', KEYS[1], 'backend'), seq, id)
return 1
"""

# ARGV: prefix, id.
REMOVE_PIN = """
drop_pin(ARGV[2])
return 1
"""

# ARGV: prefix, backend.
PINS_OF = """
return rows(redis.call('ZRANGE', P .. 'pins:' .. ARGV[2], 0, -1), 'pin:')
"""
