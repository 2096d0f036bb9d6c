-- claim(thread, consumer, lease, now, limit): only KEYS[1]; the thread's keys (ready, waiting, Claimed set,
-- stale-Queued set) are derived from the thread id (hot path: see lua/README.md, calling convention).
-- ARGV: thread, consumer, token, now, lease_until, limit.
-- Reply: {'ok', record...} in claim order (priority, created_at, dispatch_id).
return run(function()
  local t = arg(1)
  local chosen = claim_thread(t, arg(2), arg(3), arg(4), arg(5), tonumber(arg(6)), claim_keys(t))
  local out = { 'ok' }
  for _, r in ipairs(chosen) do out[#out + 1] = packed(r) end
  return out
end)
