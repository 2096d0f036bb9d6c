-- cancel(id, now): KEYS[2] record. ARGV: id, now. Only Queued dispatches; no epoch check.
-- Reply: {'ok'} (nothing cancelled) or {'ok', record}.
return run(function()
  local id, now_s = arg(1), arg(2)
  local r = load(id)
  if r == nil then return { 'ok' } end
  check(r, id)
  if r.status ~= 'Queued' then return { 'ok' } end
  transition(r, cleared({ status = 'Cancelled', completed_at = now_s, updated_at = now_s }, CLAIM_FIELDS), tonumber(now_s))
  return { 'ok', flat(r) }
end)
