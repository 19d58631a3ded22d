-- A token bucket per key, shared by every API replica: one atomic step that
-- refills the bucket for the time since its last use and takes one token.
-- The clock is Redis's (TIME), so replicas with skewed clocks agree.
--
-- KEYS[1] the bucket (a hash: tokens, ts)
-- ARGV[1] refill rate, tokens per second   ARGV[2] burst (the bucket's size)
-- Returns {1, 0} when allowed, {0, ms until a token is there} when not.
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then
  tokens, ts = burst, now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
end
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
-- A bucket left alone this long is full again: forgetting it is the same.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
