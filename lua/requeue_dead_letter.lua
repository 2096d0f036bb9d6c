-- requeue_dead_letter(id, now, reset): KEYS[2] the record. ARGV: id, now, reset ('1' = attempt_count to 0).
-- A DeadLetter dispatch back to Queued (src/contract/dead-letters.ts): available at `now`, stamped with its
-- thread's current epoch (like enqueue), claim fields, completed_at and runtime projection cleared, last_error
-- and (without reset) attempt_count kept. Its dedupe key, when another non-terminal dispatch holds it, refuses
-- the requeue; otherwise the dispatch holds it again. `transition` signals it (Redis Streams) and schedules
-- its republish. The thread's keys are derived from the record's thread_id (same hash tag as KEYS[1]).
-- Everything is read and checked before the first write.
-- Reply: {'ok', record} or NotFound(<id>) / Validation (not DeadLetter) / AlreadyExists("dedupe_key=<key>").
return run(function()
  local id, now_s, reset = arg(1), arg(2), arg(3) == '1'
  local r = load(id)
  if r == nil then raise('NotFound', id) end
  check(r, id)
  if r.status ~= 'DeadLetter' then
    raise('Validation', "dispatch '" .. id .. "' is " .. r.status .. ', not DeadLetter')
  end
  local t = r.thread_id
  if r.dedupe_key ~= nil then
    local holder = redis.call('HGET', k_dedupe(t), r.dedupe_key)
    if holder and holder ~= id then
      -- The index only holds non-terminal holders; re-check the record so a stale entry never blocks.
      local status = redis.call('HGET', k_record(holder), 'status')
      if status == 'Queued' or status == 'Claimed' then raise('AlreadyExists', 'dedupe_key=' .. r.dedupe_key) end
    end
  end
  local u = cleared(cleared({
    status = 'Queued', dispatch_epoch = num(thread_epoch(t)), available_at = now_s, completed_at = false,
    updated_at = now_s,
  }, CLAIM_FIELDS), PROJECTION)
  if reset then u.attempt_count = '0' end
  transition(r, u, tonumber(now_s))
  if r.dedupe_key ~= nil then redis.call('HSET', k_dedupe(t), r.dedupe_key, id) end
  return { 'ok', flat(r) }
end)
