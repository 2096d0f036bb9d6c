-- claim(thread, consumer, lease, now, limit): KEYS[9] thread hash, KEYS[10] ready, KEYS[11] waiting,
-- KEYS[12] Claimed set, KEYS[13] stale-Queued set of the thread.
-- ARGV: thread, consumer, token, now, lease_until, limit.
-- Reply: {'ok', record...} in claim order (priority, created_at, dispatch_id).
return run(function()
  local chosen = claim_thread(arg(1), arg(2), arg(3), arg(4), arg(5), tonumber(arg(6)),
    { KEYS[10], KEYS[11], KEYS[12], KEYS[13] })
  local out = { 'ok' }
  for _, r in ipairs(chosen) do out[#out + 1] = packed(r) end
  return out
end)
