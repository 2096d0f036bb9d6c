-- enqueue(dispatch): only KEYS[1]; the record, thread hash and dedupe hash keys are derived from the ids.
-- ARGV: field/value pairs of the validated Queued input (`enqueueFields`): the nine required fields at fixed
-- positions (dispatch_id, thread_id, run_id, priority, available_at, attempt_count, max_attempts,
-- created_at, updated_at), then dedupe_key and last_error when not null. Status and epoch are set here.
-- The record is written straight from ARGV: building a table of the pairs and flattening it again cost
-- ~8 % of an enqueue's instructions in Redis (table growth and rehashing, measured with callgrind).
-- Reply: {'ok'} or AlreadyExists("dedupe_key=<key>") / AlreadyExists(<dispatch_id>).
return run(function()
  if arg(1) ~= 'dispatch_id' or arg(17) ~= 'updated_at' then
    error('enqueue: ARGV does not hold the fields in enqueueFields order', 0)
  end
  local id, t = arg(2), arg(4)
  local dedupe = nil
  for i = 19, #ARGV - 3, 2 do
    if arg(i) == 'dedupe_key' then dedupe = arg(i + 1) end
  end
  local k_rec, k_th = k_record(id), k_thread(t)
  local k_dd = dedupe ~= nil and k_dedupe(t)
  if dedupe ~= nil then
    local holder = redis.call('HGET', k_dd, dedupe)
    if holder then
      -- The index only holds non-terminal holders; re-check the record so a stale entry never blocks.
      local status = redis.call('HGET', k_record(holder), 'status')
      if status == 'Queued' or status == 'Claimed' then raise('AlreadyExists', 'dedupe_key=' .. dedupe) end
    end
  end
  if redis.call('EXISTS', k_rec) == 1 then raise('AlreadyExists', id) end
  local thread = redis.call('HMGET', k_th, 'epoch', 'n')
  local epoch = epoch_value(t, thread[1])
  -- The stored decimal as it is, unless leading zeros need normalizing (string.format is not free).
  local dispatch_epoch
  if not thread[1] then
    dispatch_epoch = '0'
  elseif #thread[1] == 1 or string.byte(thread[1], 1) ~= 48 then
    dispatch_epoch = thread[1]
  else
    dispatch_epoch = num(epoch)
  end
  check_record_count(t, thread[2])
  preflight()
  -- Status first: the later transitions find it (and rewrite it) at the front of the hash.
  redis.call('HSET', k_rec, 'status', 'Queued', 'dispatch_epoch', dispatch_epoch, unpack(ARGV, 4))
  redis.call('HINCRBY', k_th, 'n', '1')
  if dedupe ~= nil then redis.call('HSET', k_dd, dedupe, id) end
  -- What `enter` reads of a Queued record.
  enter({
    dispatch_id = id, thread_id = t, status = 'Queued', priority = arg(8), available_at = arg(10),
    created_at = arg(16), updated_at = arg(18),
  }, nil)
  return { 'ok' }
end)
