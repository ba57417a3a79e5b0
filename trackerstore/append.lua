-- Compare-and-write of one conversation: atomic, one round trip.
--
-- KEYS[1]  log: list of encoded events
-- KEYS[2]  meta: hash with v = version (write counter), s = encoded snapshot,
--          w = token of the last write, k = the clients' idempotency keys
-- ARGV[1]  expected version, or '' to write unconditionally
-- ARGV[2]  '1' replaces the whole log, '0' appends to it
-- ARGV[3]  write token, unique per call of the store
-- ARGV[4]  TTL in seconds for both keys, '0' for none
-- ARGV[5]  encoded snapshot
-- ARGV[6]  encoded idempotency keys, or '' to keep the stored ones
-- ARGV[7..] encoded events, in order
--
-- Returns {1, new version}, or {0, stored version} on a version conflict.

local meta = redis.call('HMGET', KEYS[2], 'v', 'w')
local current = tonumber(meta[1]) or 0

-- NOTE: redis-py resends a command after a timeout. If the first attempt was
-- applied and only its reply was lost, report that success instead of a conflict
-- with ourselves, which would make the worker redo (and duplicate) the turn.
if meta[2] == ARGV[3] then
  return {1, current}
end

if ARGV[1] ~= '' and current ~= tonumber(ARGV[1]) then
  return {0, current}
end

-- NOTE: Redis checks maxmemory at a script's first write only, and only if
-- that command may grow memory; once a script has written it runs to its end.
-- So the first write is the HSET: a DEL first (a replace, a new conversation)
-- let a full Redis take every such write, far past its limit.
local version = current + 1
redis.call('HSET', KEYS[2], 'v', version, 's', ARGV[5], 'w', ARGV[3])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'k', ARGV[6])
end

-- Version 0 means no conversation, so a leftover log must not survive.
if ARGV[2] == '1' or current == 0 then
  redis.call('DEL', KEYS[1])
end

-- NOTE: unpack() is bounded by the Lua C stack (~8000 values): push in chunks.
for first = 7, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end

local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end

return {1, version}
