-- complete_and_claim_next(id, token, result, now, next claim): record_run_result + ack, then claim(limit 1) +
-- record_dispatch_start on the next thread, in one script (fused, src/contract/fused.ts). A failing
-- completion answers its error and claims nothing; a failing claim after it answers {'ok', 'claim-err', …}
-- (the completion stays committed, as with the two calls made back to back).
-- Only KEYS[1]: the record's key and the next thread's keys are derived from the ids (as in claim).
-- ARGV: as record_run_result (id, token, now, then 9 result arguments), then next thread, consumer, token,
-- lease_until, instance.
-- Reply: {'ok'} (nothing claimed), {'ok', started record} or {'ok', 'claim-err', kind, detail}.
return run(function()
  local id, token, now_s = arg(1), arg(2), arg(3)
  complete_and_ack(id, token, now_s, 4)
  local t = arg(13)
  local ok, res = pcall(claim_and_start_thread, t, arg(14), arg(15), now_s, arg(16), arg(17), claim_keys(t))
  if not ok then
    if type(res) == 'table' and res.awaken then return { 'ok', 'claim-err', res.kind, res.detail } end
    error(res, 0)
  end
  if res == nil then return { 'ok' } end
  return { 'ok', packed(res) }
end)
