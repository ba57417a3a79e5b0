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
-- With the event stream on (trackerstore/stream.py), a third key and three more
-- arguments come before the events, and each event comes twice:
-- KEYS[3]  the stream: every appended event is added to it here, in the write
--          itself, so the stream and the logs never disagree
-- ARGV[7]  MAXLEN of the stream (approximate trimming)
-- ARGV[8]  maximum age of its entries in milliseconds (MINID), '0' for none
-- ARGV[9]  the conversation id (the entries' sender_id)
-- ARGV[10..] n encoded events, then the same n events as JSON
--
-- Returns {1, new version}, or on a version conflict {0, stored version, stored
-- snapshot, stored idempotency keys}: what a load would answer, so the loser
-- redoes its turn on it without another round trip.

local meta = redis.call('HMGET', KEYS[2], 'v', 'w')
local current = tonumber(meta[1]) or 0

-- NOTE: redis-py resends a command after a timeout. If the first attempt was
-- applied and only its reply was lost, report that success instead of a conflict
-- with ourselves, which would make the worker redo (and duplicate) the turn.
if meta[2] == ARGV[3] then
  return {1, current}
end

if ARGV[1] ~= '' and current ~= tonumber(ARGV[1]) then
  local stored = redis.call('HMGET', KEYS[2], 's', 'k')
  return {0, current, stored[1], stored[2]}
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
local reset = ARGV[2] == '1' or current == 0
if reset then
  redis.call('DEL', KEYS[1])
end

local stream = #KEYS == 3
local first = stream and 10 or 7
local last = stream and first + (#ARGV - first + 1) / 2 - 1 or #ARGV

-- NOTE: unpack() is bounded by the Lua C stack (~8000 values): push in chunks.
for chunk = first, last, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, chunk, math.min(chunk + 999, last)))
end

if stream then
  local maxlen = ARGV[7]
  -- A replaced log (or a conversation started anew, after a delete or its TTL)
  -- starts again at seq 0: consumers drop what they kept of it.
  if reset then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
      'type', 'reset', 'sender_id', ARGV[9])
  end
  local seq = redis.call('LLEN', KEYS[1]) - (last - first + 1)
  for i = first, last do
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
      'type', 'event', 'sender_id', ARGV[9], 'seq', seq, 'event', ARGV[i + last - first + 1])
    seq = seq + 1
  end
  local age = tonumber(ARGV[8])
  if age > 0 then
    local now = redis.call('TIME')
    local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - age
    redis.call('XTRIM', KEYS[3], 'MINID', '~', oldest)
  end
end

local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end

return {1, version}
