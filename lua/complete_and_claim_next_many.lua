-- complete_and_claim_next_many(completions): several complete_and_claim_next calls in one, each on its own
-- as if called alone, in order. Only KEYS[1]. ARGV: for each call, the number of its arguments (17), then
-- its arguments; at most 16 calls (the caller's batch).
-- Reply: {'ok', reply, reply, ...}, one per call: what complete_and_claim_next answers ({'ok', ...} or the
-- error envelope {'err', kind, detail, expected, actual}), or {'redis', message} for a Redis error (alone
-- it would have failed the whole call). See `each_call`. The status counters are applied once, at the end.
return run(function()
  return each_call(complete_and_claim_next_at)
end)
