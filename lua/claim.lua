-- claim(thread, consumer, lease, now, limit): KEYS[2] thread hash, KEYS[3] ready, KEYS[4] waiting,
-- KEYS[5] Claimed set, KEYS[6] stale-Queued set of the thread.
-- ARGV: thread, consumer, token, now, lease_until, limit.
-- Reply: {'ok', record...} in claim order (priority, created_at, dispatch_id).
return run(function()
  local chosen = claim_thread(arg(1), arg(2), arg(3), arg(4), arg(5), tonumber(arg(6)),
    { KEYS[3], KEYS[4], KEYS[5], KEYS[6] })
  local out = { 'ok' }
  for _, r in ipairs(chosen) do out[#out + 1] = packed(r) end
  return out
end)
