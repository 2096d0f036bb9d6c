-- purge_terminal(older_than, batch): no extra KEYS. ARGV: older_than, batch.
-- Deletes up to `batch` terminal dispatches with updated_at < older_than. A thread left without records
-- loses its epoch state (memory semantics); when this batch drained the matching set it also drops the
-- epoch state of every other thread without records (interrupted while empty).
-- Reply: {'ok', deleted, more ('1' when the batch was full)}.
return run(function()
  local older_s, batch = arg(1), tonumber(arg(2))
  local members = redis.call('ZRANGEBYSCORE', K_TERMINAL, '-inf', '(' .. older_s, 'LIMIT', 0, batch)
  local records = {}
  for _, member in ipairs(members) do
    local r = load_indexed(string.sub(member, TERMINAL_ID_AT), nil, 'the terminal index')
    if not is_terminal(r.status) then corrupt(r.dispatch_id, 'indexed as terminal but the record is ' .. r.status) end
    records[#records + 1] = r
    check_record_count(r.thread_id, redis.call('HGET', k_thread(r.thread_id), 'n'))
  end
  preflight()
  for _, r in ipairs(records) do delete_terminal(r) end
  local more = #members == batch
  if not more then drop_drained_threads() end
  return { 'ok', num(#records), more and '1' or '0' }
end)
