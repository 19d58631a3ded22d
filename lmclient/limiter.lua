-- The shared LM rate limit: token buckets for requests and tokens per minute,
-- each holding a few calls' (tokens') worth so that a backlog goes out evenly
-- at the rate rather than in one burst (paceBurst in limiter.go), a provider
-- cool-down, and a register of interactive waiters that batch
-- callers yield to. Time is the Redis server's, so workers' clocks don't matter.
--
-- KEYS[1] bucket hash {r = requests left, t = tokens left, ts = last refill ms}
-- KEYS[2] interactive waiters: zset of waiter id -> expiry ms
-- KEYS[3] cool-down key (exists while the provider asked us to back off)
-- ARGV[1] op: acquire | adjust | cooldown | release
--
-- acquire  ARGV: rpm, tpm, cost, priority (0 interactive, 1 batch), waiter id, batch poll ms,
--          request bucket capacity, token bucket capacity
--          returns {wait ms (0 = admitted), 1 if the wait is a cool-down else 0}
-- adjust   ARGV: tpm, tokens to charge (negative gives back), token bucket capacity
-- cooldown ARGV: ms; extends, never shortens, the cool-down, and publishes
--          what is left of it (ms) on the channel named KEYS[3], which
--          processes with no limit set mirror instead of calling acquire
-- release  ARGV: waiter id; an interactive waiter that gave up
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if op == 'cooldown' then
  local ms = tonumber(ARGV[2])
  local left = redis.call('PTTL', KEYS[3])
  if left < ms then
    redis.call('SET', KEYS[3], '1', 'PX', ms)
    left = ms
  end
  redis.call('PUBLISH', KEYS[3], left)
  return 0
end

if op == 'release' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end

if op == 'adjust' then
  local tpm = tonumber(ARGV[2])
  if tpm <= 0 then return 0 end
  local tcap = tonumber(ARGV[4])
  local cur = tonumber(redis.call('HGET', KEYS[1], 't')) or tcap
  cur = cur - tonumber(ARGV[3])
  if cur > tcap then cur = tcap end
  if cur < -tpm then cur = -tpm end
  redis.call('HSET', KEYS[1], 't', cur)
  return 0
end

-- acquire
local rpm, tpm, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local prio, id, poll = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local rcap, tcap = tonumber(ARGV[8]), tonumber(ARGV[9])

local cd = redis.call('PTTL', KEYS[3])
if cd > 0 then
  if prio == 0 then redis.call('ZADD', KEYS[2], now + cd + 1000, id) end
  return {cd, 1}
end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if prio ~= 0 and redis.call('ZCARD', KEYS[2]) > 0 then
  return {poll, 0}
end

if rpm <= 0 and tpm <= 0 then
  redis.call('ZREM', KEYS[2], id)
  return {0, 0}
end

local b = redis.call('HMGET', KEYS[1], 'r', 't', 'ts')
local r = tonumber(b[1]) or rcap
local tk = tonumber(b[2]) or tcap
local ts = tonumber(b[3]) or now
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
-- A bucket filled under a bigger capacity (an older limiter) is cut down too.
if rpm > 0 then r = math.min(rcap, r + elapsed * rpm / 60000) end
-- A call costing more than the bucket holds waits for a full one and leaves
-- it in debt, which the next calls wait out.
local need = cost
if tpm > 0 then
  tk = math.min(tcap, tk + elapsed * tpm / 60000)
  if cost > tpm then cost = tpm end
  need = math.min(cost, tcap)
end

local wait = 0
if rpm > 0 and r < 1 then wait = math.max(wait, math.ceil((1 - r) * 60000 / rpm)) end
if tpm > 0 and tk < need then wait = math.max(wait, math.ceil((need - tk) * 60000 / tpm)) end
if wait == 0 then
  if rpm > 0 then r = r - 1 end
  if tpm > 0 then tk = tk - cost end
  redis.call('ZREM', KEYS[2], id)
elseif prio == 0 then
  redis.call('ZADD', KEYS[2], now + wait + 1000, id)
end
redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(tk), 'ts', now)
redis.call('PEXPIRE', KEYS[1], 120000)
return {wait, 0}
