-- reclaim_expired_leases(now, limit): no extra KEYS. ARGV: now, limit.
-- Claimed dispatches with lease_until < now, oldest lease first, at most `limit` (stale ones count).
-- Reply: {'ok', record...} of the lease-expiry transitions (Queued or DeadLetter); stale claims are
-- superseded and not returned.
return run(function()
  local now_s, limit = arg(1), tonumber(arg(2))
  if limit == 0 then return { 'ok' } end
  local now = tonumber(now_s)
  local expired = {}
  local epochs = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', '(' .. now_s, 'LIMIT', 0, limit)) do
    local r = load_indexed(id, 'Claimed', 'the lease index')
    expired[#expired + 1] = r
    -- Every epoch is read (and checked) before the first write.
    if epochs[r.thread_id] == nil then epochs[r.thread_id] = thread_epoch(r.thread_id) end
  end
  preflight()
  local out = { 'ok' }
  for _, r in ipairs(expired) do
    local current = epochs[r.thread_id]
    if tonumber(r.dispatch_epoch) < current then
      supersede(r, now_s, current, REASON_LEASE_AFTER_INTERRUPT)
    else
      local attempts = failed_attempts(r)
      local u = cleared(cleared({ attempt_count = num(attempts), available_at = now_s, updated_at = now_s }, CLAIM_FIELDS), PROJECTION)
      if attempts >= tonumber(r.max_attempts) then
        u.status = 'DeadLetter'
        u.last_error = REASON_LEASE_MAX_ATTEMPTS
        u.completed_at = now_s
      else
        u.status = 'Queued'
        u.completed_at = false
      end
      transition(r, u, now)
      out[#out + 1] = flat(r)
    end
  end
  return out
end)
