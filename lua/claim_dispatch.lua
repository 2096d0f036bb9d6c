-- claim_dispatch(id, consumer, lease, now): KEYS[2] record. ARGV: id, consumer, token, now, lease_until.
-- available_at is ignored (inline claim by id). Reply: {'ok'} (not claimed) or {'ok', record}.
return run(function()
  local r = claim_by_id(arg(1), arg(2), arg(3), arg(4), arg(5))
  if r == nil then return { 'ok' } end
  return { 'ok', packed(r) }
end)
