-- enqueue(dispatch): only KEYS[1]; the record, thread hash and dedupe hash keys are derived from the ids.
-- ARGV (`enqueueArgs`): see `enqueue_at` in the prelude.
-- Reply: {'ok'}, {'ok', 'quiet'} (the thread holds a claim: no signal), or AlreadyExists("dedupe_key=<key>") /
-- AlreadyExists(<dispatch_id>).
return run(function()
  return enqueue_at(3, #ARGV)
end)
