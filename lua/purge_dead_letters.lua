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
  for _, r in ipairs(doomed) do delete_terminal(r) end
  drop_drained_threads()
  return { 'ok', num(#doomed) }
end)
