-- enqueue(dispatch): only KEYS[1]; the record, thread hash and dedupe hash keys are derived from the ids.
-- ARGV: field/value pairs of the validated Queued input (null fields omitted; status and epoch are set here).
-- Reply: {'ok'} or AlreadyExists("dedupe_key=<key>") / AlreadyExists(<dispatch_id>).
return run(function()
  local r = {}
  for i = 4, #ARGV, 2 do r[ARGV[i]] = ARGV[i + 1] end
  local id = r.dispatch_id
  local k_rec, k_th, k_dd = k_record(id), k_thread(r.thread_id), k_dedupe(r.thread_id)
  if r.dedupe_key ~= nil then
    local holder = redis.call('HGET', k_dd, r.dedupe_key)
    if holder then
      -- The index only holds non-terminal holders; re-check the record so a stale entry never blocks.
      local status = redis.call('HGET', k_record(holder), 'status')
      if status == 'Queued' or status == 'Claimed' then raise('AlreadyExists', 'dedupe_key=' .. r.dedupe_key) end
    end
  end
  if redis.call('EXISTS', k_rec) == 1 then raise('AlreadyExists', id) end
  local thread = redis.call('HMGET', k_th, 'epoch', 'n')
  local epoch = epoch_value(r.thread_id, thread[1])
  -- The stored decimal as it is, unless leading zeros need normalizing (string.format is not free).
  if not thread[1] then
    r.dispatch_epoch = '0'
  elseif #thread[1] == 1 or string.byte(thread[1], 1) ~= 48 then
    r.dispatch_epoch = thread[1]
  else
    r.dispatch_epoch = num(epoch)
  end
  check_record_count(r.thread_id, thread[2])
  preflight()
  r.status = 'Queued'
  redis.call('HSET', k_rec, unpack(flat(r)))
  redis.call('HINCRBY', k_th, 'n', '1')
  if r.dedupe_key ~= nil then redis.call('HSET', k_dd, r.dedupe_key, id) end
  enter(r, nil)
  return { 'ok' }
end)
