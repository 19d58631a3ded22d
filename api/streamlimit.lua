-- Open streams per key, shared by every API replica: a sorted set of leases
-- (member: the stream's id, score: when its lease ends). A stream renews its
-- lease while it is open and removes it when it closes; the lease of a stream
-- whose API process died runs out by itself. The clock is Redis's (TIME), so
-- replicas with skewed clocks agree. Long polls and uploads use the same
-- leases, in sets of their own.
--
-- KEYS[1] the key's leases
-- ARGV[1] op: acquire, renew or release   ARGV[2] the stream's id
-- ARGV[3] lease ms   ARGV[4] limit (acquire)
-- acquire returns 1 when the stream may open, 0 when the key is at its limit.
local op, id = ARGV[1], ARGV[2]
if op == 'release' then
  return redis.call('ZREM', KEYS[1], id)
end
local lease = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if op == 'renew' then
  redis.call('ZADD', KEYS[1], 'XX', now + lease, id)
  redis.call('PEXPIRE', KEYS[1], lease)
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, id)
redis.call('PEXPIRE', KEYS[1], lease)
return 1
