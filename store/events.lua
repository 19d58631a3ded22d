-- Appending an event, shared by record.lua and batch.lua. Go prepends T, the
-- event templates it rendered from the events' types (jobs.Template says how
-- their placeholders read), before this file and the script (NewScript).

-- fill puts values[name] in each placeholder of template: an integer, a
-- plain string (in quotes), or JSON from Go (as it is). A value of the wrong
-- kind is an error: the event would not be the JSON Go renders.
local function fill(template, values)
  return (string.gsub(template, '([\1\2\3])([%w_]+)%1', function(kind, name)
    local v = values[name]
    if kind == '\1' then
      if type(v) ~= 'number' or v ~= math.floor(v) then error('event template: ' .. name .. ' is not an integer') end
      return string.format('%d', v)
    end
    if type(v) ~= 'string' then error('event template: ' .. name .. ' is not a string') end
    if kind == '\2' then
      if string.find(v, '[^%w_%-]') then error('event template: ' .. name .. ' is not a plain string') end
      return '"' .. v .. '"'
    end
    return v
  end))
end

-- append_event adds an event to a capped stream and publishes it, with the
-- id the stream gave it, on channel (T.envelope: jobs.Event). data is the
-- event's data as Go rendered it, or a filled template.
local function append_event(stream, channel, cap, etype, data)
  local eid = redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', 'type', etype, 'data', data)
  redis.call('PUBLISH', channel, fill(T.envelope, {id = eid, type = etype, data = data}))
  return eid
end

