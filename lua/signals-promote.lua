-- Redis Streams signals: one pull step (standalone script, no prelude).
-- KEYS[1] signal stream, KEYS[2] delayed zset (score = due time in ms, member = JSON {t, d, a, id}).
-- ARGV[1] promote limit, ARGV[2] group, ARGV[3] consumer, ARGV[4] reclaim idle ms, ARGV[5] reclaim cursor,
-- ARGV[6] reclaim count (0 = do not reclaim), ARGV[7] read count (0 = do not read).
-- 1. Moves up to `limit` due delayed signals back into the stream (XADD with their attempt count, ZREM).
-- 2. Optionally claims up to `reclaim count` entries idle longer than `idle` ms in the group (a crashed
--    puller's), with their delivery counts.
-- 3. Optionally reads up to `read count` new entries for `consumer` (XREADGROUP … '>', never blocking:
--    the caller blocks on its own connection only when this found nothing), so a pull under load is one
--    round trip.
-- Reply: { promoted, wait_ms (until the earliest remaining delayed signal, -1 if none), next_cursor,
--          id1, {field, value, ...}, deliveries1, id2, ... }.
-- The clock is the server's (TIME), as in signals-nack-delay.lua, so clients with skewed clocks agree.
local stream, delayed = KEYS[1], KEYS[2]
local group, consumer = ARGV[2], ARGV[3]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local ok, e = pcall(cjson.decode, member)
  if ok and type(e) == 'table' and type(e.t) == 'string' and type(e.d) == 'string' then
    redis.call('XADD', stream, '*', 't', e.t, 'd', e.d, 'a', tostring(math.floor(tonumber(e.a) or 0)))
  end
  -- A corrupt member is dropped rather than retried forever; the sweeper republishes its dispatch.
  redis.call('ZREM', delayed, member)
end

local wait = -1
local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if first[2] then wait = math.max(0, tonumber(first[2]) - now) end

local out = { #due, wait, '0-0' }
local reclaim, read = tonumber(ARGV[6]), tonumber(ARGV[7])
if (reclaim > 0 or read > 0) and redis.call('EXISTS', stream) == 1 then
  if reclaim > 0 then
    local claimed = redis.pcall('XAUTOCLAIM', stream, group, consumer, ARGV[4], ARGV[5], 'COUNT', reclaim)
    if type(claimed) == 'table' and not claimed.err then
      out[3] = claimed[1]
      for _, entry in ipairs(claimed[2]) do
        local id, fields = entry[1], entry[2]
        if fields then
          local pending = redis.call('XPENDING', stream, group, id, id, 1)
          local deliveries = 1
          if pending[1] then deliveries = tonumber(pending[1][4]) end
          out[#out + 1] = id
          out[#out + 1] = fields
          out[#out + 1] = deliveries
          read = read - 1
        end
      end
    end
  end
  if read > 0 then
    -- A missing group is left for the caller's blocking read to report (NOGROUP) and repair.
    local fresh = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', read, 'STREAMS', stream, '>')
    if type(fresh) == 'table' and not fresh.err and fresh[1] then
      for _, entry in ipairs(fresh[1][2]) do
        out[#out + 1] = entry[1]
        out[#out + 1] = entry[2]
        out[#out + 1] = 1
      end
    end
  end
end
return out
