-- claim_and_start(thread, consumer, lease, now, instance): claim(limit 1) then record_dispatch_start on the
-- claimed record, in one script (fused, src/contract/fused.ts). KEYS as claim: KEYS[2] thread hash,
-- KEYS[3] ready, KEYS[4] waiting, KEYS[5] Claimed set, KEYS[6] stale-Queued set of the thread.
-- ARGV: thread, consumer, token, now, lease_until, instance.
-- Reply: {'ok'} (nothing claimed) or {'ok', started record}.
return run(function()
  local r = claim_and_start_thread(arg(1), arg(2), arg(3), arg(4), arg(5), arg(6),
    { KEYS[3], KEYS[4], KEYS[5], KEYS[6] })
  if r == nil then return { 'ok' } end
  return { 'ok', packed(r) }
end)
