-- enqueue(dispatch): only KEYS[1]; the record, thread hash and dedupe hash keys are derived from the ids.
-- ARGV (`enqueueArgs`): the values of dispatch_id, thread_id, run_id, priority, available_at, attempt_count,
-- max_attempts, created_at and updated_at, in that order, then field/value pairs for dedupe_key and
-- last_error when not null (all validated by the caller). Status and epoch are set here.
-- The record is written straight from ARGV with the field names as constants: a table built from field/value
-- pairs and flattened again, and the names sent with every call, cost Redis ~13 % of an enqueue (callgrind).
-- Reply: {'ok'} or AlreadyExists("dedupe_key=<key>") / AlreadyExists(<dispatch_id>).
return run(function()
  local id, t = arg(1), arg(2)
  local dedupe = nil
  for i = 10, #ARGV - 3, 2 do
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
  redis.call('HSET', k_rec, 'status', 'Queued', 'dispatch_epoch', dispatch_epoch, 'dispatch_id', id, 'thread_id', t,
    'run_id', arg(3), 'priority', arg(4), 'available_at', arg(5), 'attempt_count', arg(6), 'max_attempts', arg(7),
    'created_at', arg(8), 'updated_at', arg(9), unpack(ARGV, 13))
  redis.call('HINCRBY', k_th, 'n', '1')
  if dedupe ~= nil then redis.call('HSET', k_dd, dedupe, id) end
  -- What `enter` reads of a Queued record.
  enter({
    dispatch_id = id, thread_id = t, status = 'Queued', priority = arg(4), available_at = arg(5),
    created_at = arg(8), updated_at = arg(9),
  }, nil)
  return { 'ok' }
end)
