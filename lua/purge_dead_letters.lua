-- purge_dead_letters(ids...): no extra KEYS. ARGV: the dispatch ids (at most args.MAX_BATCH, distinct).
-- Deletes the listed dispatches that are DeadLetter; missing ids and other statuses are skipped. As in
-- purge_terminal, a thread left without records loses its epoch state, and so does every thread that was
-- interrupted while empty (memory semantics). Every listed record is read and checked before the first write.
-- Reply: {'ok', deleted}.
return run(function()
  local doomed = {}
  for i = 1, #ARGV - 3 do
    local id = arg(i)
    local r = load(id)
    if r ~= nil then
      check(r, id)
      if r.status == 'DeadLetter' then doomed[#doomed + 1] = r end
    end
  end
  for _, r in ipairs(doomed) do
    local t = r.thread_id
    redis.call('ZREM', K_TERMINAL, terminal_key(r))
    redis.call('ZREM', k_status('DeadLetter', t), order_key(r))
    redis.call('HINCRBY', K_COUNTS, 'DeadLetter', -1)
    redis.call('DEL', k_record(r.dispatch_id))
    if tonumber(redis.call('HINCRBY', k_thread(t), 'n', -1)) <= 0 then
      redis.call('DEL', k_thread(t), k_dedupe(t), k_stale(t))
      forget_epoch()
    end
  end
  for _, t in ipairs(redis.call('SMEMBERS', K_DRAINED)) do
    local n = redis.call('HGET', k_thread(t), 'n')
    if not n or (tonumber(n) or 0) <= 0 then
      redis.call('DEL', k_thread(t))
      forget_epoch()
    end
  end
  redis.call('DEL', K_DRAINED)
  return { 'ok', num(#doomed) }
end)
