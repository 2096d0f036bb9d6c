-- enqueue_many(dispatches): several enqueues in one call, each on its own as if called alone, in order.
-- Only KEYS[1], as enqueue. ARGV: for each dispatch, the number of its arguments, then its `enqueueArgs`
-- (see `enqueue_at` in the prelude); at most 32 dispatches (the caller's batch).
-- Reply: {'ok', result, result, ...}, one result per dispatch: 'ok', or the error envelope {'err', kind,
-- detail, expected, actual} of a domain error (nothing of that dispatch was written), or {'redis', message}
-- for a Redis error (a key of the wrong type; alone it would have failed the whole call). The status
-- counters of every dispatch written are applied once, at the end.
return run(function()
  local out = { 'ok' }
  local at, n = 4, #ARGV
  while at <= n do
    local last = at + tonumber(ARGV[at])
    local ok, err = pcall(enqueue_at, at, last)
    out[#out + 1] = ok and 'ok' or batch_failure(err)
    at = last + 1
  end
  return out
end)
