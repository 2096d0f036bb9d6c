-- enqueue_many(dispatches): several enqueues in one call, each on its own as if called alone, in order.
-- Only KEYS[1], as enqueue. ARGV: for each dispatch, the number of its arguments, then its `enqueueArgs`
-- (see `enqueue_at` in the prelude); at most 32 dispatches (the caller's batch).
-- Reply: {'ok', reply, reply, ...}, one per dispatch: enqueue's reply ({'ok'}, {'ok', 'quiet'}, or the error
-- envelope {'err', kind, detail, expected, actual} of a domain error, nothing of that dispatch written), or
-- {'redis', message} for a Redis error (a key of the wrong type; alone it would have failed the whole
-- call). See `each_call`. The status counters of every dispatch written are applied once, at the end.
return run(function()
  return each_call(enqueue_at)
end)
