-- The usage accounting (jobs.UsageStatsKey), shared by record.lua (a job's
-- complete) and batch.lua (an item's result fill): the script that records
-- a completion counts it in the same step, so it counts once. Go prepends
-- usage_counters, the counters in the order Go passes them (store's
-- usageCounters).

-- count_usage adds one completion to its hour's hash: ARGV[i] the hash (""
-- or none: nothing to count), [i+1] the fields' prefix (the JSON array of
-- key name, program, version and model, open for the counter's name),
-- [i+2] when the hash expires (unix ms), [i+3..] one count per counter,
-- each 0 or more; a 0 is not written. The hash gets its expiry with each
-- tuple's first job of the hour (an absolute time: setting it again
-- changes nothing). The writes come after the completion's own and through
-- pcall: a counter that would overflow stays as it is, and cannot fail the
-- completion.
local function count_usage(i)
  local key = ARGV[i]
  if not key or key == '' then return end
  local prefix = ARGV[i + 1]
  for k, name in ipairs(usage_counters) do
    local n = ARGV[i + 2 + k]
    if n ~= '0' then
      local v = redis.pcall('HINCRBY', key, prefix .. name .. '"]', n)
      if k == 1 and v == 1 then redis.call('PEXPIREAT', key, ARGV[i + 2]) end
    end
  end
end
