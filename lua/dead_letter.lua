-- dead_letter(id, token, error, now): KEYS[2] record. ARGV: id, token, error, now. Projection kept.
-- Reply: {'ok'}.
return run(function()
  local err, now_s = arg(3), arg(4)
  local r = owner_guard(arg(1), arg(2), now_s, REASON_BEFORE_DEAD_LETTER, false)
  transition(r, cleared({ status = 'DeadLetter', last_error = err, completed_at = now_s, updated_at = now_s }, CLAIM_FIELDS), tonumber(now_s))
  return { 'ok' }
end)
