-- Every change to a job record. One script so that the status change and its
-- event happen atomically, and so that no caller can leave a terminal state.
--
-- KEYS[1] job hash   KEYS[2] event stream   KEYS[3] idempotency key or ""
-- KEYS[4] asynq pending list of the job's queue (create only) or ""
-- (start: KEYS[3] the worker's job index; recover: KEYS[3] the lost
-- worker's job index, KEYS[4] the recovering set)
-- ARGV[1] op   ARGV[2] now (ms)   ARGV[3] pub/sub channel   ARGV[4] stream cap
-- ARGV[5] job id, ARGV[6..] op arguments.
local job, stream = KEYS[1], KEYS[2]
local op, now, channel, cap, id = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]

local terminal = {completed = true, failed = true, cancelled = true, expired = true}

-- legacy_spec are the fields a record of release 114e39c holds instead of
-- spec (store's legacySpec reads them).
local legacy_spec = {question = true, owner = true, queue = true, stream = true, no_cache = true}

-- append adds an event to the job's stream and publishes it (events.lua):
-- its data as Go rendered it, or a template Go rendered (T) filled in with
-- what only this script knows.
local function append(etype, data)
  return append_event(stream, channel, cap, etype, data)
end

-- add_calls adds an attempt's LM calls (ARGV[i]) to the job's lm_calls, so
-- the total counts every attempt's, not only the last one's.
local function add_calls(i)
  local n = tonumber(ARGV[i]) or 0
  if n > 0 then redis.call('HINCRBY', job, 'lm_calls', n) end
end

-- rec holds the record's fields the ops read, in one HMGET (below, after
-- create).
local rec = {}

-- owner is the job's owner: a field of the record beside its spec, as
-- release 114e39c's records have it too.
local function owner()
  return rec.owner or ''
end

-- usage_key is the owner's token usage counter of a UTC day: jobs.UsageKey's
-- name, built here from the owner the record holds.
local function usage_key(day)
  return 'qa:budget:' .. owner() .. ':' .. day
end

-- worker_jobs is a worker's index of its running jobs: jobs.WorkerJobsKey's
-- name, built here from the worker the record holds.
local function worker_jobs(worker)
  return 'qa:worker:' .. worker .. ':jobs'
end

local function finish(status, ttl, fields)
  redis.call('HSET', job, 'status', status, 'finished_at', now, 'updated_at', now, unpack(fields))
  redis.call('PEXPIRE', job, ttl)
  redis.call('PEXPIRE', stream, ttl)
end

if op == 'create' then
  -- ARGV[6] pending ttl ms, [7] idempotency ttl ms, [8] body hash (the
  -- spec's), [9] max pending (0 = no limit), [10] accept timeout ms,
  -- [11] queued event data, [12..] field/value pairs: the spec (json), and
  -- enqueued with an idempotency key
  local pending_ttl, idem_ttl, body_hash, max_pending = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
  local accept_timeout = tonumber(ARGV[10])
  if KEYS[3] ~= '' then
    local held = redis.call('GET', KEYS[3])
    if held then
      local sep = string.find(held, ' ', 1, true)
      local other, other_hash = string.sub(held, 1, sep - 1), string.sub(held, sep + 1)
      if other_hash ~= body_hash then return {'mismatch', other} end
      local other_key = 'qa:job:' .. other
      if redis.call('EXISTS', other_key) == 1 then
        local o = redis.call('HMGET', other_key, 'enqueued', 'status', 'created_at')
        -- Not marked enqueued and no worker has seen it: the request that
        -- wrote it is still accepting it, or died before it could enqueue
        -- (crash, Redis lost mid-way) and no client ever had its id. After
        -- the accept timeout, forget it; a task it may have left finds no
        -- record and is dropped.
        if o[1] ~= '0' or o[2] ~= 'queued' then return {'duplicate', other} end
        if now - (tonumber(o[3]) or 0) < accept_timeout then return {'in_progress', other} end
        redis.call('DEL', other_key, other_key .. ':events')
      end
      -- The job it named is gone (deleted, expired or abandoned): the key is
      -- free again.
    end
  end
  if KEYS[4] ~= '' and max_pending > 0 and redis.call('LLEN', KEYS[4]) >= max_pending then
    return {'full'}
  end
  if KEYS[3] ~= '' then
    redis.call('SET', KEYS[3], id .. ' ' .. body_hash, 'PX', idem_ttl)
  end
  -- The id is new (jobs.NewJobID: 128 random bits), so the record is too.
  redis.call('HSET', job, 'id', id, 'status', 'queued', 'attempts', 0, 'created_at', now,
    'updated_at', now, unpack(ARGV, 12))
  redis.call('PEXPIRE', job, pending_ttl)
  -- The queued event goes to the stream only: nobody can be listening for
  -- a new id yet but a submit that waits (SubmitWait), which needs the end
  -- only.
  local eid = redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', 'type', 'queued', 'data', ARGV[11])
  redis.call('PEXPIRE', stream, pending_ttl)
  return {'created', eid}
end

if op == 'recover' then
  -- A recoverer found the worker ARGV[6] dead: if the job still runs there,
  -- put it back under a new task id (the record's task, which start alone
  -- accepts from now on) and move it from that worker's index to the
  -- recovering set, which the recoverer empties once the task is enqueued.
  -- ARGV[7] the reason (json string). Returns recovered and the task id.
  local r = redis.call('HMGET', job, 'status', 'worker', 'attempts', 'recoveries')
  if r[1] ~= 'running' or r[2] ~= ARGV[6] then
    redis.call('SREM', KEYS[3], id)
    return {'skipped'}
  end
  local n = (tonumber(r[4]) or 0) + 1
  local task = id .. '.' .. n
  redis.call('HSET', job, 'status', 'retrying', 'task', task, 'recoveries', n, 'updated_at', now, 'due_at', now)
  append('retrying', fill(T.lost, {attempt = tonumber(r[3]), reason = ARGV[7]}))
  redis.call('SMOVE', KEYS[3], KEYS[4], id)
  return {'recovered', task}
end

-- Every record has a status: none means no record. start reads the whole
-- record, which it hands the worker (its spec and checkpoints), in the one
-- read; the other ops read the fields they use.
local whole
if op == 'start' then
  whole = redis.call('HGETALL', job)
  for i = 1, #whole, 2 do rec[whole[i]] = whole[i + 1] end
else
  local v = redis.call('HMGET', job, 'status', 'attempts', 'owner', 'lm_calls', 'started_at', 'stream_seq',
    'worker', 'task', 'created_at')
  rec = {status = v[1], attempts = v[2], owner = v[3], lm_calls = v[4], started_at = v[5], stream_seq = v[6],
    worker = v[7], task = v[8], created_at = v[9]}
end
if not rec.status then return {'missing'} end
local status = rec.status

-- unindex takes a running job out of its worker's index: its attempt ends
-- or goes back.
local function unindex()
  if status == 'running' then
    redis.call('SREM', worker_jobs(rec.worker), id)
  end
end

if op == 'enqueued' then
  redis.call('HSET', job, 'enqueued', '1')
  return {'ok'}
end

if op == 'abort' then
  -- The enqueue failed after the record was written: forget the job entirely.
  redis.call('DEL', job, stream)
  if KEYS[3] ~= '' then redis.call('DEL', KEYS[3]) end
  return {'ok'}
end

if op == 'delete' then
  if not terminal[status] then return {'active', status} end
  local task = rec.task or id
  redis.call('DEL', job, stream)
  return {'ok', task}
end

if terminal[status] then return {'terminal', status} end
local attempts = tonumber(rec.attempts)

if op == 'start' then
  -- ARGV[6] max attempts, [7] max wait before a first start (ms, 0 = none),
  -- [8] worker id, [9] result ttl ms, [10] expired event data, [11] gave-up
  -- event data, [12] the owner's daily token budget (0 = none), [13] the UTC
  -- day (yyyy-mm-dd), [14] over-budget event data. Returns started, the
  -- attempt, the LM calls so far and the record's spec and checkpoints
  -- (field/value pairs), which the worker runs. [15] the asynq task's id: a task other than the
  -- record's (one a recoverer replaced) is refused (foreign) and dropped.
  local max_attempts, max_wait, worker, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9]
  if ARGV[15] ~= (rec.task or id) then return {'foreign'} end
  if attempts == 0 and max_wait > 0 and now - tonumber(rec.created_at) > max_wait then
    unindex()
    finish('expired', ttl, {'error', cjson.encode(cjson.decode(ARGV[10]).error)})
    append('expired', ARGV[10])
    return {'expired'}
  end
  if attempts >= max_attempts then
    unindex()
    finish('failed', ttl, {'error', cjson.encode(cjson.decode(ARGV[11]).error)})
    append('failed', ARGV[11])
    return {'failed'}
  end
  -- The budget is checked at every start, not only at submit: jobs accepted
  -- before it ran out must not spend past it. The counter is the one
  -- complete adds to.
  local budget = tonumber(ARGV[12]) or 0
  if budget > 0 then
    if (tonumber(redis.call('GET', usage_key(ARGV[13]))) or 0) >= budget then
      unindex()
      finish('failed', ttl, {'error', cjson.encode(cjson.decode(ARGV[14]).error)})
      append('failed', ARGV[14])
      return {'over_budget'}
    end
  end
  attempts = attempts + 1
  -- A running job's attempt was lost (asynq recovered its task): it leaves
  -- that worker's index for this one's.
  unindex()
  redis.call('SADD', KEYS[3], id)
  -- The first start sets started_at (the read says whether one did).
  local first = {}
  if not rec.started_at then first = {'started_at', now} end
  redis.call('HSET', job, 'status', 'running', 'attempts', attempts, 'worker', worker,
    'attempt_started_at', now, 'updated_at', now, 'stream_seq', 0, unpack(first))
  append('started', fill(T.started, {attempt = attempts}))
  -- The reply carries what the worker runs, not the whole record: the
  -- spec (or a release 114e39c record's fields that stand for it) and the
  -- checkpoints; and when the attempt became due (created_at, due_at), for
  -- its trace's queued span.
  local reply = {'started', tostring(attempts), rec.lm_calls or '0'}
  for i = 1, #whole, 2 do
    local f = whole[i]
    if f == 'spec' or string.sub(f, 1, 11) == 'checkpoint:' or (not rec.spec and legacy_spec[f]) or
      f == 'created_at' or f == 'due_at' then
      table.insert(reply, f)
      table.insert(reply, whole[i + 1])
    end
  end
  return reply
end

if op == 'cancel' then
  -- ARGV[6] result ttl ms. Returns the status it had and the task id.
  unindex()
  finish('cancelled', ARGV[6], {})
  append('cancelled', fill(T.cancelled, {previous = status}))
  redis.call('PUBLISH', 'qa:cancel', id)
  return {'cancelled', status, rec.task or id}
end

-- The remaining ops belong to one attempt (ARGV[6]): a stale attempt (a
-- worker that lost its lease while a newer attempt runs, or waits to run
-- again) must not touch the record, nor end it with its own result. An
-- attempt that ended the job already was answered 'terminal' above, so a
-- write repeated after a lost reply still finds the job ended.
local attempt = tonumber(ARGV[6])
if status ~= 'running' or attempts ~= attempt then return {'stale', status} end

if op == 'fail' then
  -- ARGV[7] result ttl ms, [8] event data, [9] the attempt's LM calls,
  -- [10..] field/value pairs
  add_calls(9)
  unindex()
  finish('failed', ARGV[7], {unpack(ARGV, 10)})
  append('failed', ARGV[8])
  return {'failed'}
end

if op == 'complete' then
  -- ARGV[7] result ttl ms, [8] the result (json: the record holds it, the
  -- completed event carries it), [9] tokens the job used, [10] the UTC day
  -- (yyyy-mm-dd), [11] usage counter ttl ms, [12] the attempt's LM calls,
  -- [13..22] the usage accounting's (count_usage, usage.lua), [23] n, the
  -- keys to set with the result (Attempt.Cache: the LM cache's entries),
  -- [24..23+3n] key, value, ttl ms (0: none) triples, [24+3n..] the last
  -- streamed pieces (Attempt.Trail): event type (token or retrying) and
  -- data pairs, appended before the completed event. The tokens go to the
  -- owner's counter for the day, and the usage to its hour's accounting,
  -- here, so each completion counts once, atomically with it.
  -- The LM calls go in finish's HSET (add_calls would be a command more).
  local fields = {'result', ARGV[8], 'error', ''}
  local calls = tonumber(ARGV[12]) or 0
  if calls > 0 then
    table.insert(fields, 'lm_calls')
    table.insert(fields, (tonumber(rec.lm_calls) or 0) + calls)
  end
  local trail = 24 + 3 * tonumber(ARGV[23])
  for i = 24, trail - 1, 3 do
    if tonumber(ARGV[i + 2]) > 0 then
      redis.call('SET', ARGV[i], ARGV[i + 1], 'PX', ARGV[i + 2])
    else
      redis.call('SET', ARGV[i], ARGV[i + 1])
    end
  end
  for i = trail, #ARGV - 1, 2 do append(ARGV[i], ARGV[i + 1]) end
  unindex()
  finish('completed', ARGV[7], fields)
  -- The event, its message with the record's end (T.ended_envelope): a
  -- wait answers from it without reading the record.
  local data = fill(T.completed, {result = ARGV[8]})
  local eid = redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', 'type', 'completed', 'data', data)
  redis.call('PUBLISH', channel, fill(T.ended_envelope, {id = eid, type = 'completed', data = data,
    attempts = attempts, started_at = tonumber(rec.started_at) or 0, finished_at = now}))
  local tokens = tonumber(ARGV[9])
  if tokens > 0 then
    local usage = usage_key(ARGV[10])
    -- The day's counter gets its ttl when this adds the first tokens.
    if redis.call('INCRBY', usage, tokens) == tokens then
      redis.call('PEXPIRE', usage, ARGV[11])
    end
  end
  count_usage(13)
  return {'completed'}
end

if op == 'stage' then
  -- A multi-stage job's finished stage: ARGV[7] the checkpoint's field
  -- (checkpoint:<stage index>), [8] the checkpoint (json, which the next
  -- attempt's start hands back), [9] stage_completed event data, [10] the
  -- stage's LM calls, counted here so a worker killed after the stage still
  -- counts them. A repeat after a lost reply finds the field written and
  -- adds neither calls nor an event.
  if redis.call('HSETNX', job, ARGV[7], ARGV[8]) == 0 then return {'ok', 'repeat'} end
  add_calls(10)
  return {'ok', append('stage_completed', ARGV[9])}
end

if op == 'token' or op == 'reset' then
  -- ARGV[7] event data, [8] the write's number within the attempt (from 1).
  -- A write repeated because its reply was lost (Redis dropped the
  -- connection after running it) is acknowledged without a second event. A
  -- reset sends a retrying event: the attempt goes on, but what it streamed
  -- so far is void (the program fell back to another adapter).
  local seq = tonumber(ARGV[8])
  if seq <= (tonumber(rec.stream_seq) or 0) then return {'ok', 'repeat'} end
  redis.call('HSET', job, 'stream_seq', seq)
  if op == 'reset' then return {'ok', append('retrying', ARGV[7])} end
  return {'ok', append('token', ARGV[7])}
end

if op == 'retry' or op == 'defer' then
  -- ARGV[7] error json, [8] event data, [9] the attempt's LM calls, [10]
  -- the delay (ms) before it runs again: due_at says when the next
  -- attempt is due. A defer (rate-limited: put back with a delay) does not
  -- count as an attempt.
  if op == 'defer' then attempts = attempts - 1 end
  add_calls(9)
  unindex()
  redis.call('HSET', job, 'status', 'retrying', 'attempts', attempts, 'error', ARGV[7], 'updated_at', now,
    'due_at', now + (tonumber(ARGV[10]) or 0))
  append('retrying', ARGV[8])
  return {'ok'}
end

return redis.error_reply('unknown op ' .. op)
