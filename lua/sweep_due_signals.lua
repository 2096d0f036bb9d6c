-- sweep_due_signals(now, republish_after, limit): no extra KEYS. ARGV: now, republish_after_ms, limit.
-- Queued dispatches that are available and whose last signal is older than the republish delay: marks
-- them signalled at `now`, XADDs them when the Redis Streams transport is active, returns their refs.
-- Reply: {'ok', thread_id, dispatch_id, thread_id, dispatch_id, ...}.
return run(function()
  local now_s, again, limit = arg(1), tonumber(arg(2)), tonumber(arg(3))
  local out = { 'ok' }
  if limit == 0 then return out end
  local next_s = num(tonumber(now_s) + again)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now_s, 'LIMIT', 0, limit)) do
    local fields = redis.call('HMGET', k_record(id), 'status', 'thread_id')
    if fields[1] ~= 'Queued' or not fields[2] then
      -- Not Queued any more (or gone): the index entry is stale, drop it rather than signal.
      redis.call('ZREM', K_DUE, id)
    else
      redis.call('ZADD', K_DUE, next_s, id)
      signal({ thread_id = fields[2], dispatch_id = id })
      out[#out + 1] = fields[2]
      out[#out + 1] = id
    end
  end
  return out
end)
