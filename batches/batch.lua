-- Every change to a batch record: accepting it, starting and finishing its
-- items, cancelling (and freeing the inputs of items that will not run),
-- expiring, retrying, deleting, and its owner's quota share with each. One
-- script so that a result slot, the counts and the events move together, and
-- so that a slot is filled once however often asynq runs an item's task.
--
-- KEYS[1] batch hash   KEYS[2] items hash   KEYS[3] results hash
-- KEYS[4] attempts hash   KEYS[5] event stream   KEYS[6] owner's batch index
-- KEYS[7] idempotency key or ""   KEYS[8] owners with running batches
-- ARGV[1] op   ARGV[2] now (ms)   ARGV[3] pub/sub channel   ARGV[4] stream cap
-- ARGV[5] batch id   ARGV[6] result ttl ms   ARGV[7..] op arguments.
local batch, items, results, attempts, stream, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local op, now, channel, cap, id, result_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local terminal = {completed = true, failed = true, cancelled = true, expired = true}

-- The owners with running batches (owner → running batches; jobs.ActiveOwnersKey),
-- so workers enforce BATCH_OWNER_SHARE only when owners compete for the slots.
local active = KEYS[8]

local function activate(delta)
  local owner = redis.call('HGET', batch, 'owner') or ''
  redis.call('ZINCRBY', active, delta, owner)
  if delta < 0 then redis.call('ZREMRANGEBYSCORE', active, '-inf', 0) end
end

-- Quotas (BatchConfig.QuotaItems, QuotaBytes): what each owner's live
-- batches hold. qa:batches:{owner}:usage (hash) has the totals (items,
-- bytes) and each batch's share (id -> "items bytes"); qa:batches:{owner}:expiry
-- (sorted set) has when each batch's keys expire. A batch that expires by
-- TTL runs no code: the next prune finds its keys gone and frees its share.
local function usage_keys(owner)
  local prefix = 'qa:batches:' .. owner
  return prefix .. ':usage', prefix .. ':expiry'
end

local function share_of(u, bid)
  local v = redis.call('HGET', u, bid)
  if not v then return 0, 0 end
  local sp = string.find(v, ' ', 1, true)
  return tonumber(string.sub(v, 1, sp - 1)), tonumber(string.sub(v, sp + 1))
end

-- add_share moves a batch's share, and the owner's totals, by (items, bytes).
-- A total moves only by a part that is not zero: releasing a share whose
-- bytes a cancel freed negates a 0 into Lua's -0, which reaches Redis as
-- "-0", not an integer to HINCRBY.
local function add_share(owner, bid, items, bytes)
  local u = usage_keys(owner)
  local i, b = share_of(u, bid)
  i, b = i + items, b + bytes
  if items ~= 0 then redis.call('HINCRBY', u, 'items', items) end
  if bytes ~= 0 then redis.call('HINCRBY', u, 'bytes', bytes) end
  if i <= 0 and b <= 0 then
    redis.call('HDEL', u, bid)
  else
    redis.call('HSET', u, bid, i .. ' ' .. b)
  end
end

-- outlive makes the owner's usage keys live at least ttl ms more.
local function outlive(owner, ttl)
  for _, k in ipairs({usage_keys(owner)}) do
    if redis.call('PTTL', k) < tonumber(ttl) then redis.call('PEXPIRE', k, ttl) end
  end
end

-- release frees a batch's whole share.
local function release(owner, bid)
  local u, e = usage_keys(owner)
  local i, b = share_of(u, bid)
  if i > 0 or b > 0 then add_share(owner, bid, -i, -b) end
  redis.call('ZREM', e, bid)
end

-- usage frees the shares of the owner's batches whose keys have expired
-- (one whose life a retry extended gets its new end) and returns the totals.
local function usage(owner)
  local u, e = usage_keys(owner)
  for _, bid in ipairs(redis.call('ZRANGEBYSCORE', e, '-inf', now)) do
    local ttl = redis.call('PTTL', 'qa:batch:' .. bid)
    if ttl == -1 then ttl = tonumber(result_ttl) end
    if ttl > 0 then redis.call('ZADD', e, now + ttl, bid) else release(owner, bid) end
  end
  local v = redis.call('HMGET', u, 'items', 'bytes')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0
end

-- failed_line reports whether an item's result line records a failure: the
-- items a retry runs again.
local function failed_line(line)
  return line and string.find(line, '"status":"failed"', 1, true) ~= nil
end

-- calls_field is where the attempts hash keeps the LM calls of item i's
-- attempts that did not complete it, so that its line's provenance counts
-- every attempt's, as a job's does.
local function calls_field(i)
  return i .. ':lm_calls'
end

local function add_calls(i, n)
  n = tonumber(n) or 0
  if n > 0 then redis.call('HINCRBY', attempts, calls_field(i), n) end
end

-- free_input deletes item i's stored input and returns its bytes, for the
-- caller to take off the owner's share.
local function free_input(i)
  local n = redis.call('HSTRLEN', items, i)
  if n > 0 then redis.call('HDEL', items, i) end
  return n
end

-- free_share takes freed input bytes off the batch's share, never more than
-- the share holds: a batch accepted before quotas were counted (by a release
-- before them, running across an upgrade) has none, and freeing its inputs
-- must not take the owner's totals below what its other batches hold.
local function free_share(bytes)
  local owner = redis.call('HGET', batch, 'owner') or ''
  local _, held = share_of(usage_keys(owner), id)
  bytes = math.min(bytes, held)
  if bytes > 0 then add_share(owner, id, 0, -bytes) end
end

-- append adds an event to the batch's stream and publishes it (events.lua).
local function append(etype, data)
  return append_event(stream, channel, cap, etype, data)
end

local function counts()
  local v = redis.call('HMGET', batch, 'total', 'completed', 'failed', 'cancelled')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0
end

-- progress is the data of progress and terminal events (jobs.BatchProgress),
-- with a provider-mode batch's provider object once its runner wrote one.
local function progress(status)
  local t, c, f, x = counts()
  local values = {status = status, total = t, completed = c, failed = f, cancelled = x}
  local provider = redis.call('HGET', batch, 'provider')
  if provider then
    values.provider = provider
    return fill(T.batch_provider_progress, values)
  end
  return fill(T.batch_progress, values)
end

-- offloaded reports whether the batch is a provider-mode batch whose items
-- its offload runner has taken (expanded): they are the runner's to record,
-- cancelled ones included, not the cancel's.
local function offloaded()
  return redis.call('HGET', batch, 'mode') == 'provider' and (tonumber(redis.call('HGET', batch, 'expanded')) or 0) > 0
end

-- usage_key is the owner's token usage counter of a UTC day: jobs.UsageKey's
-- name, built here from the owner the batch record holds.
local function usage_key(day)
  return 'qa:budget:' .. (redis.call('HGET', batch, 'owner') or '') .. ':' .. day
end

local function expire_all(ttl)
  for _, k in ipairs({batch, items, results, attempts, stream, batch .. ':offload', batch .. ':stages'}) do redis.call('PEXPIRE', k, ttl) end
end

-- finish ends the batch: results live result_ttl from now.
local function finish(status)
  redis.call('HSET', batch, 'status', status, status .. '_at', now, 'updated_at', now)
  activate(-1)
  expire_all(result_ttl)
  local _, e = usage_keys(redis.call('HGET', batch, 'owner') or '')
  redis.call('ZADD', e, 'XX', now + tonumber(result_ttl), id)
  append(status, progress(status))
  return {status}
end

-- settle ends the batch when every item is accounted for, else publishes a
-- progress event at most every interval ms.
local function settle(interval)
  local t, c, f, x = counts()
  local status = redis.call('HGET', batch, 'status')
  if c + f + x >= t then
    if status == 'cancelling' then return finish('cancelled') end
    return finish('completed')
  end
  local last = tonumber(redis.call('HGET', batch, 'progress_at')) or 0
  if now - last >= interval then
    redis.call('HSET', batch, 'progress_at', now)
    append('progress', progress(status))
  end
  return {'ok'}
end

-- account fills an item's result slot if it is empty and moves the counts
-- only then.
local function account(idx, outcome, line, interval)
  -- A stopped expansion counted every item from its cursor on cancelled
  -- (stop_expand), slots left empty; a task past the cursor (enqueued by an
  -- expansion that died before recording it) must not count its item again.
  local cut = tonumber(redis.call('HGET', batch, 'unexpanded_cancelled'))
  if cut and tonumber(idx) >= cut then return {'duplicate'} end
  if redis.call('HSETNX', results, idx, line) == 0 then return {'duplicate'} end
  redis.call('HINCRBY', batch, outcome, 1)
  return settle(interval)
end

if op == 'usage' then
  -- ARGV[7] owner. Returns the owner's items and bytes.
  local items, bytes = usage(ARGV[7])
  return {tostring(items), tostring(bytes)}
end

if op == 'accept' then
  -- The items are stored; make the batch live. ARGV[7] pending ttl ms,
  -- [8] idempotency ttl ms, [9] body hash, [10] created ms, [11] items,
  -- [12] their bytes, [13] the owner's items quota, [14] bytes quota (0:
  -- none). Returns accepted, or why not: duplicate or mismatch (and the
  -- batch the Idempotency-Key names), lost (the upload's keys expired), or
  -- quota (and which, the limit, what the owner's batches hold).
  local pending_ttl, idem_ttl, body_hash = ARGV[7], ARGV[8], ARGV[9]
  local total, bytes = tonumber(ARGV[11]), tonumber(ARGV[12])
  if KEYS[7] ~= '' then
    local held = redis.call('GET', KEYS[7])
    if held then
      local sep = string.find(held, ' ', 1, true)
      local other, other_hash = string.sub(held, 1, sep - 1), string.sub(held, sep + 1)
      if redis.call('EXISTS', 'qa:batch:' .. other) == 1 then
        if other_hash ~= body_hash then return {'mismatch', other} end
        return {'duplicate', other}
      end
    end
  end
  if redis.call('HGET', batch, 'status') ~= 'validating' or redis.call('HLEN', items) ~= total then
    return {'lost'}
  end
  local owner = redis.call('HGET', batch, 'owner')
  local used_items, used_bytes = usage(owner)
  for _, q in ipairs({{'items', used_items, total, tonumber(ARGV[13])}, {'bytes', used_bytes, bytes, tonumber(ARGV[14])}}) do
    if q[4] > 0 and q[2] + q[3] > q[4] then return {'quota', q[1], tostring(q[4]), tostring(q[2])} end
  end
  if KEYS[7] ~= '' then redis.call('SET', KEYS[7], id .. ' ' .. body_hash, 'PX', idem_ttl) end
  redis.call('HSET', batch, 'status', 'in_progress', 'total', total, 'in_progress_at', now, 'updated_at', now, 'progress_at', now)
  redis.call('ZADD', index, ARGV[10], id)
  activate(1)
  redis.call('PEXPIRE', index, pending_ttl)
  expire_all(pending_ttl)
  add_share(owner, id, total, bytes)
  local _, e = usage_keys(owner)
  redis.call('ZADD', e, now + tonumber(pending_ttl), id)
  outlive(owner, pending_ttl)
  append('progress', progress('in_progress'))
  return {'accepted'}
end

if redis.call('EXISTS', batch) == 0 then return {'missing'} end
local status = redis.call('HGET', batch, 'status')
-- A batch still validating is an upload in progress: nothing but its abort
-- (or accept, above) acts on it; its window check, enqueued before it went
-- live, finds no batch.
if status == 'validating' and op ~= 'abort' then return {'missing'} end

if op == 'delete' then
  if not terminal[status] then return {'active', status} end
  release(redis.call('HGET', batch, 'owner') or '', id)
  redis.call('DEL', batch, items, results, attempts, stream, batch .. ':offload', batch .. ':stages')
  redis.call('ZREM', index, id)
  return {'ok'}
end

if op == 'abort' then
  -- Storing or accepting failed before the 202: forget the batch.
  if status == 'in_progress' then activate(-1) end
  release(redis.call('HGET', batch, 'owner') or '', id)
  redis.call('DEL', batch, items, results, attempts, stream)
  redis.call('ZREM', index, id)
  if KEYS[7] ~= '' then
    local held = redis.call('GET', KEYS[7])
    if held and string.sub(held, 1, #id) == id then redis.call('DEL', KEYS[7]) end
  end
  return {'ok'}
end

if op == 'free_inputs' then
  -- A cancelled batch's items in [ARGV[7], ARGV[8]) that will not run: their
  -- inputs go, and the owner's share with them. Kept: a started item's (it
  -- may fail), a failed item's (a retry runs it again; an item refused for
  -- the budget fails without starting), and in a retry round an item's
  -- without a result (reopened: its requeue task may not have read it yet;
  -- its start frees it when it counts it cancelled).
  if status ~= 'cancelling' and status ~= 'cancelled' then return {'ok', '0'} end
  -- An offloaded batch's runner reads the inputs of the items the provider
  -- finished (billed, so recorded) after the cancel; the rest it counts
  -- cancelled itself. Their inputs go with the batch.
  if offloaded() then return {'ok', '0'} end
  local round = tonumber(redis.call('HGET', batch, 'round')) or 0
  local freed = 0
  for i = tonumber(ARGV[7]), tonumber(ARGV[8]) - 1 do
    if redis.call('HEXISTS', attempts, i) == 0 then
      local line = redis.call('HGET', results, i)
      if not (failed_line(line) or (not line and round > 0)) then freed = freed + free_input(i) end
    end
  end
  free_share(freed)
  return {'ok', tostring(freed)}
end

if op == 'retry' then
  -- ARGV[7] round, [8] the error (json) of a failed item that cannot run
  -- again, [9..] indexes of failed items to run again. Only an item that
  -- has its input runs again, so no reopened item lacks what its run reads
  -- (a batch would wait for it until its window ended); one without (freed
  -- by a cancel before cancels kept failed items' inputs) stays failed, and
  -- its line says why.
  if not terminal[status] then return {'active', status} end
  local n = 0
  for i = 9, #ARGV do
    local line = redis.call('HGET', results, ARGV[i])
    if failed_line(line) then
      if redis.call('HEXISTS', items, ARGV[i]) == 1 then
        redis.call('HDEL', results, ARGV[i])
        redis.call('HDEL', attempts, ARGV[i], calls_field(ARGV[i]), 'worker:' .. ARGV[i], 'task:' .. ARGV[i])
        n = n + 1
      else
        local old = cjson.decode(line)
        redis.call('HSET', results, ARGV[i], '{"custom_id":' .. cjson.encode(old.custom_id or '') ..
          ',"status":"failed","error":' .. ARGV[8] .. ',"attempts":' .. (tonumber(old.attempts) or 0) .. '}')
      end
    end
  end
  if n == 0 then return {'none'} end
  redis.call('HINCRBY', batch, 'failed', -n)
  activate(1)
  redis.call('HSET', batch, 'status', 'in_progress', 'round', ARGV[7], 'updated_at', now, 'progress_at', now)
  redis.call('HDEL', batch, 'completed_at', 'failed_at', 'cancelled_at', 'expired_at', 'cancelling_at')
  local window = tonumber(redis.call('HGET', batch, 'window_ms')) or 0
  redis.call('HSET', batch, 'expires_at', now + window)
  expire_all(window + tonumber(result_ttl))
  outlive(redis.call('HGET', batch, 'owner') or '', window + tonumber(result_ttl))
  append('progress', progress('in_progress'))
  return {'retrying', tostring(n)}
end

if op == 'provider' then
  -- ARGV[7] the provider object (jobs.ProviderProgress JSON) of a
  -- provider-mode batch, from its offload runner, announced in a progress
  -- event. An ended batch keeps it (the runner's last word may follow the
  -- last item's end) without an event after its terminal one.
  redis.call('HSET', batch, 'provider', ARGV[7], 'updated_at', now)
  if not terminal[status] then append('progress', progress(status)) end
  return {'ok'}
end

if op == 'cost' then
  -- ARGV[7] the batch's cost so far (jobs.BatchCost JSON); kept after its
  -- end too.
  redis.call('HSET', batch, 'cost', ARGV[7])
  return {'ok'}
end

if terminal[status] then return {'terminal', status} end

local function past_window()
  local deadline = tonumber(redis.call('HGET', batch, 'expires_at')) or 0
  return deadline > 0 and now >= deadline
end

-- provider_pending reports whether an offloaded batch's runner has
-- provider work under way: its provider object is written and not done. A
-- batch whose offload task no worker took (none has the provider's batch
-- API, or none serves its queue) has none, and its window applies.
local function provider_pending()
  if not offloaded() then return false end
  local p = redis.call('HGET', batch, 'provider')
  return p ~= false and cjson.decode(p).phase ~= 'done'
end

-- expired reports whether the batch's completion window has passed. It does
-- not cut a provider round, which takes up to the provider's window (24 h)
-- per program stage: while one is pending, the window check moves the
-- window on instead (expire).
local function expired()
  return past_window() and not provider_pending()
end

if op == 'expire' then
  if not past_window() then return {'not_due'} end
  if provider_pending() then
    -- A fresh window from now, the keys' life with it, as a retry's.
    local window = tonumber(redis.call('HGET', batch, 'window_ms')) or 0
    redis.call('HSET', batch, 'expires_at', now + window, 'updated_at', now)
    expire_all(window + tonumber(result_ttl))
    outlive(redis.call('HGET', batch, 'owner') or '', window + tonumber(result_ttl))
    return {'not_due'}
  end
  return finish('expired')
end

if op == 'cancel' then
  if status ~= 'cancelling' then
    redis.call('HSET', batch, 'status', 'cancelling', 'cancelling_at', now, 'updated_at', now)
    append('progress', progress('cancelling'))
    redis.call('PUBLISH', 'qa:cancel', id)
  end
  -- Nothing left to reach (every item already accounted for, or none
  -- expanded yet and the rest counted by the expansion): end now.
  return settle(0)
end

if op == 'expanded' then
  -- ARGV[7] cursor: items below it have tasks.
  local cur = tonumber(redis.call('HGET', batch, 'expanded')) or 0
  if tonumber(ARGV[7]) > cur then redis.call('HSET', batch, 'expanded', ARGV[7]) end
  return {status}
end

-- stop_expanding counts the items from cursor on cancelled, once: the batch
-- is cancelling before they had a task.
local function stop_expanding(cursor)
  if redis.call('HSETNX', batch, 'unexpanded_cancelled', cursor) == 0 then return {'ok'} end
  local t = counts()
  local rest = t - tonumber(cursor)
  -- Slots of items never run stay empty; the counts say they were cancelled.
  if rest > 0 then redis.call('HINCRBY', batch, 'cancelled', rest) end
  return settle(0)
end

if op == 'stop_expand' then
  -- The batch is cancelling before every item had a task. ARGV[7] cursor.
  return stop_expanding(ARGV[7])
end

if op == 'offload' then
  -- A provider-mode batch's expansion: every item goes to its offload
  -- runner (expanded = total), recorded before the runner's task is
  -- enqueued, so a re-run enqueues it again (answer offload). A batch
  -- cancelling before that record gets no runner: its items are counted
  -- cancelled as stop_expand does (answer the batch's end, or stopped).
  local t = counts()
  local cur = tonumber(redis.call('HGET', batch, 'expanded')) or 0
  if cur < t and status == 'cancelling' then
    local r = stop_expanding(cur)
    if r[1] == 'ok' then return {'stopped'} end
    return r
  end
  if cur < t then redis.call('HSET', batch, 'expanded', t) end
  return {'offload'}
end

-- Item ops. ARGV[7] index, [8] progress interval ms.
local idx, interval = ARGV[7], tonumber(ARGV[8])

-- A running item's run: the attempts hash keeps the worker running it
-- (worker:<index>), which indexes it in qa:worker:<id>:items
-- (jobs.WorkerItemsKey) under its task's payload, and, once a recoverer has
-- put it back after its worker was lost, the one task that may start it
-- (task:<index>).
local run_worker = 'worker:' .. idx

local function worker_items(worker)
  return 'qa:worker:' .. worker .. ':items'
end

-- current reports whether the run of worker ARGV[w], attempt ARGV[w + 1],
-- is the item's current one: a run its worker lost (and a recoverer put
-- back), or a newer attempt replaced, writes nothing.
local function current(w)
  return (redis.call('HGET', attempts, run_worker) or '') == ARGV[w] and
    tonumber(redis.call('HGET', attempts, idx) or 0) == tonumber(ARGV[w + 1])
end

-- unindex ends the run's place in its worker's index (member: ARGV[m]).
local function unindex(m)
  local w = redis.call('HGET', attempts, run_worker)
  if w then
    redis.call('SREM', worker_items(w), ARGV[m])
    redis.call('HDEL', attempts, run_worker)
  end
end

if op == 'recover_item' then
  -- A recoverer found worker ARGV[9] dead: if the item still runs there,
  -- put it back under the task ARGV[11] .. '.' .. n (n counting its
  -- recoveries), the only one its start accepts from now on, and move it
  -- (ARGV[10], its payload) from that worker's index to the recovering
  -- set, which the recoverer empties once the task is enqueued.
  if redis.call('HEXISTS', results, idx) == 1 or redis.call('HGET', attempts, run_worker) ~= ARGV[9] then
    redis.call('SREM', worker_items(ARGV[9]), ARGV[10])
    return {'skipped'}
  end
  local task = ARGV[11] .. '.' .. redis.call('HINCRBY', attempts, 'recoveries:' .. idx, 1)
  redis.call('HSET', attempts, 'task:' .. idx, task)
  redis.call('HDEL', attempts, run_worker)
  redis.call('SMOVE', worker_items(ARGV[9]), 'qa:workers:recovering_items', ARGV[10])
  return {'recovered', task}
end

if op == 'start' then
  -- ARGV[9] max attempts, [10] the item's line if cancelled, [11] its line if
  -- it gives up, [12] the UTC day (yyyy-mm-dd), [13] the owner's daily token
  -- budget (0 = none), [14] the item's line if the budget is spent. Returns
  -- started, the attempt, the item (json), the batch's owner and spec
  -- (the rest of the item's spec) and no_cache (a batch release 114e39c
  -- accepted holds no spec but no_cache; see batchSpec), and the LM calls
  -- of the item's earlier attempts, or why not. [15] the worker, [16] the
  -- task's payload (the item's place in the worker's index), [17] the
  -- task's id: a task other than the one a recoverer put the item back
  -- under is refused (foreign).
  local task = redis.call('HGET', attempts, 'task:' .. idx)
  if task and task ~= ARGV[17] then return {'foreign'} end
  if redis.call('HEXISTS', results, idx) == 1 then return {'done'} end
  if expired() then
    finish('expired')
    return {'expired'}
  end
  -- The offload runner's start (no worker) of an offloaded batch's item
  -- goes on while it cancels: the runner records what the provider
  -- finished, and counts the rest cancelled itself.
  if status == 'cancelling' and not (ARGV[15] == '' and offloaded()) then
    local r = account(idx, 'cancelled', ARGV[10], interval)
    -- It will not run: its input goes, if a cancel did not free it already
    -- (a retry round's items; a freeing that failed).
    free_share(free_input(idx))
    return {'cancelled', r[1]}
  end
  -- Checked at every start: items accepted before the budget ran out must
  -- not spend past it. Counted failed, so the batch goes on to its end.
  local budget = tonumber(ARGV[13]) or 0
  if budget > 0 and (tonumber(redis.call('GET', usage_key(ARGV[12]))) or 0) >= budget then
    local r = account(idx, 'failed', ARGV[14], interval)
    return {'over_budget', r[1]}
  end
  local n = redis.call('HINCRBY', attempts, idx, 1)
  if n > tonumber(ARGV[9]) then
    local r = account(idx, 'failed', ARGV[11], interval)
    return {'failed', r[1]}
  end
  local item = redis.call('HGET', items, idx)
  if not item then return {'missing'} end
  -- A run lost without a recoverer (asynq ran the task again): it leaves
  -- that worker's index for this one's.
  unindex(16)
  if ARGV[15] ~= '' then
    redis.call('HSET', attempts, run_worker, ARGV[15])
    redis.call('SADD', worker_items(ARGV[15]), ARGV[16])
  end
  local b = redis.call('HMGET', batch, 'owner', 'spec', 'no_cache')
  return {'started', tostring(n), item, b[1] or '', b[2] or '', b[3] or '', redis.call('HGET', attempts, calls_field(idx)) or '0'}
end

if op == 'defer' then
  -- Put back without counting the attempt (owner share, rate limit,
  -- shutdown). ARGV[9] the attempt's LM calls, [10] the worker, [11] the
  -- attempt, [12] the item's place in the worker's index.
  if not current(10) then return {'stale'} end
  unindex(12)
  redis.call('HINCRBY', attempts, idx, -1)
  add_calls(idx, ARGV[9])
  return {'ok'}
end

if op == 'lm_calls' then
  -- A failed attempt that runs again: ARGV[9] its LM calls, [10] the
  -- worker, [11] the attempt, [12] the item's place in the worker's index.
  if not current(10) then return {'stale'} end
  unindex(12)
  add_calls(idx, ARGV[9])
  return {'ok'}
end

if op == 'finish' then
  -- ARGV[9] outcome (completed, failed, cancelled), [10] the result line,
  -- [11] the UTC day (yyyy-mm-dd), [12] the tokens the item used, [13] the
  -- usage counter's ttl ms: counted when the slot is filled, so once per
  -- item. [14] the worker, [15] the attempt, [16] the item's place in the
  -- worker's index, [17..26] a completed item's usage accounting
  -- (count_usage, usage.lua; none for another outcome), counted with the
  -- tokens. A filled slot answers duplicate (a repeat after a lost reply
  -- included) before a run is found stale.
  if redis.call('HEXISTS', results, idx) == 0 and not current(14) then return {'stale'} end
  unindex(16)
  local r = account(idx, ARGV[9], ARGV[10], interval)
  if r[1] ~= 'duplicate' and tonumber(ARGV[12]) > 0 then
    local usage = usage_key(ARGV[11])
    redis.call('INCRBY', usage, ARGV[12])
    redis.call('PEXPIRE', usage, ARGV[13])
  end
  if r[1] ~= 'duplicate' then count_usage(17) end
  return r
end

return redis.error_reply('unknown op ' .. op)
