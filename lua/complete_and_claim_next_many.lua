-- complete_and_claim_next_many(completions): several complete_and_claim_next calls in one, each on its own
-- as if called alone, in order. Only KEYS[1]. ARGV: the 17 arguments of each call, one call after another
-- (at most 16 calls: the caller's batch).
-- Reply: {'ok', reply, reply, ...}, one per call: what complete_and_claim_next answers ({'ok', ...} or the
-- error envelope {'err', kind, detail, expected, actual}), or {'redis', message} for a Redis error (alone
-- it would have failed the whole call). The status counters are applied once, at the end.
return run(function()
  local out = { 'ok' }
  for base = 3, #ARGV - 17, 17 do
    local ok, res = pcall(complete_and_claim_next_at, base)
    out[#out + 1] = ok and res or batch_failure(res)
  end
  return out
end)
