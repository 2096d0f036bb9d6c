-- interrupt(thread, now): KEYS[2] thread hash, KEYS[3] Queued set, KEYS[4] Claimed set of the thread.
-- ARGV: thread, now. Bumps the epoch, supersedes every Queued dispatch (epoch unchanged), leaves Claimed ones.
-- Reply: {'ok', new_epoch, active record or {}, superseded record...}.
return run(function()
  local t, now_s = arg(1), arg(2)
  local old = thread_epoch(t)
  -- Validate everything this call touches before the first write.
  local queued = {}
  for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    queued[#queued + 1] = load_indexed(string.sub(member, ORDER_ID_AT), 'Queued', 'the Queued set of its thread')
  end
  local active = {}
  local first = redis.call('ZRANGE', KEYS[4], 0, 0)
  if #first > 0 then
    active = flat(load_indexed(string.sub(first[1], ORDER_ID_AT), 'Claimed', 'the Claimed set of its thread'))
  end
  local n = redis.call('HGET', KEYS[2], 'n')
  preflight()
  redis.call('HSET', KEYS[2], 'epoch', num(old + 1))
  forget_epoch()
  if not n or tonumber(n) == nil or tonumber(n) <= 0 then redis.call('SADD', K_DRAINED, t) end
  local out = { 'ok', num(old + 1), active }
  for _, r in ipairs(queued) do
    if tonumber(r.dispatch_epoch) <= old then
      supersede(r, now_s, nil, REASON_QUEUED_BY_INTERRUPT)
      out[#out + 1] = flat(r)
    end
  end
  return out
end)
