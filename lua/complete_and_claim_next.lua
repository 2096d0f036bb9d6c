-- complete_and_claim_next(id, token, result, now, next claim): record_run_result + ack, then claim(limit 1) +
-- record_dispatch_start on the next thread, in one script (fused, src/contract/fused.ts). A failing
-- completion answers its error and claims nothing; a failing claim after it answers {'ok', 'claim-err', …}
-- (the completion stays committed, as with the two calls made back to back).
-- Only KEYS[1]: the record's key and the next thread's keys are derived from the ids (as in claim).
-- ARGV: as record_run_result (id, token, now, then 9 result arguments), then next thread, consumer, token,
-- lease_until, instance (17 in all; `complete_and_claim_next_at` in the prelude).
-- Reply: {'ok'} (nothing claimed), {'ok', started record} or {'ok', 'claim-err', kind, detail}.
return run(function()
  return complete_and_claim_next_at(3)
end)
