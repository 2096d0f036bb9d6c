-- enqueue_many(dispatches): several enqueues in one call, each on its own as if called alone, in order.
-- Only KEYS[1], as enqueue. ARGV: for each dispatch, the number of its arguments, then its `enqueueArgs`
-- (see `enqueue_at` in the prelude); at most 256 dispatches (the caller's batch).
-- Reply: {'ok', result, result, ...}, one result per dispatch: 'ok', or {kind, detail} for a domain error
-- (nothing of that dispatch was written), or {'redis', message} for a Redis error (a key of the wrong type;
-- alone it would have failed the whole call). The status counters of every dispatch written are applied
-- once, at the end.
return run(function()
  local out = { 'ok' }
  local at, n = 4, #ARGV
  while at <= n do
    local argc = tonumber(ARGV[at])
    local last = at + argc
    local ok, err = pcall(enqueue_at, at, last)
    if ok then
      out[#out + 1] = 'ok'
    elseif type(err) == 'table' and err.awaken then
      out[#out + 1] = { err.kind, err.detail }
    else
      out[#out + 1] = { 'redis', type(err) == 'table' and tostring(err.err) or tostring(err) }
    end
    at = last + 1
  end
  return out
end)
