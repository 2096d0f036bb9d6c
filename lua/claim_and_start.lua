-- claim_and_start(thread, consumer, lease, now, instance): claim(limit 1) then record_dispatch_start on the
-- claimed record, in one script (fused, src/contract/fused.ts). Only KEYS[1]: the thread's keys are derived,
-- as in claim.
-- ARGV: thread, consumer, token, now, lease_until, instance.
-- Reply: {'ok'} (nothing claimed) or {'ok', started record}.
return run(function()
  local t = arg(1)
  local r = claim_and_start_thread(t, arg(2), arg(3), arg(4), arg(5), arg(6), claim_keys(t))
  if r == nil then return { 'ok' } end
  return { 'ok', packed(r) }
end)
