-- The registry's one writer: a push (store a version if new, move an alias
-- to it) or an alias move (to a stored version), then pruning, then a
-- notice to every alias cache. One script, so the versions, their hashes
-- and the aliases never disagree and concurrent pushes cannot prune an
-- aliased version.
--
-- KEYS[1] names set, KEYS[2] versions zset, KEYS[3] aliases hash,
-- KEYS[4] the version's hash.
-- ARGV[1] "push" or "alias", ARGV[2] name, ARGV[3] version, ARGV[4] alias,
-- ARGV[5] max versions, ARGV[6] channel, ARGV[7] version key prefix,
-- ARGV[8] created (unix ms, push only), ARGV[9..] the version's fields and
-- values (push only).
--
-- Returns {created (1 or 0), pruned versions...}, or {-1} for an alias
-- move to a version not stored.
local names, versions, aliases, vkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, name, version, alias = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max, channel, prefix = tonumber(ARGV[5]), ARGV[6], ARGV[7]

local created = 0
if op == 'push' then
  if redis.call('EXISTS', vkey) == 0 then
    redis.call('HSET', vkey, unpack(ARGV, 9))
    -- Scores increase with each new version, even within a millisecond,
    -- so pruning follows push order.
    local score = tonumber(ARGV[8])
    local newest = redis.call('ZRANGE', versions, -1, -1, 'WITHSCORES')
    if newest[2] and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 1 end
    redis.call('ZADD', versions, score, version)
    created = 1
  end
  redis.call('SADD', names, name)
elseif not redis.call('ZSCORE', versions, version) then
  return {-1}
end

local moved = redis.call('HGET', aliases, alias) ~= version
redis.call('HSET', aliases, alias, version)

local out = {created}
local n = redis.call('ZCARD', versions)
if n > max then
  local held = {}
  for _, v in ipairs(redis.call('HVALS', aliases)) do held[v] = true end
  for _, v in ipairs(redis.call('ZRANGE', versions, 0, -1)) do
    if n <= max then break end
    if not held[v] then
      redis.call('DEL', prefix .. v)
      redis.call('ZREM', versions, v)
      n = n - 1
      out[#out + 1] = v
    end
  end
end

if moved or #out > 1 then
  redis.call('PUBLISH', channel, name)
end
return out
