-- nack(id, token, retry_at, error, now): KEYS[2] record. ARGV: id, token, retry_at, error, now.
-- Reply: {'ok', new status, thread_id} ('Queued' = claimable again, signalled; 'DeadLetter' = exhausted).
return run(function()
  local retry_s, err, now_s = arg(3), arg(4), arg(5)
  local r = owner_guard(arg(1), arg(2), now_s, REASON_BEFORE_NACK, false)
  local attempts = failed_attempts(r)
  if attempts >= tonumber(r.max_attempts) then
    transition(r, cleared({
      status = 'DeadLetter', attempt_count = num(attempts), last_error = err, completed_at = now_s, updated_at = now_s,
    }, CLAIM_FIELDS), tonumber(now_s))
  else
    transition(r, cleared(cleared({
      status = 'Queued', attempt_count = num(attempts), available_at = retry_s, last_error = err,
      completed_at = false, updated_at = now_s,
    }, CLAIM_FIELDS), PROJECTION), tonumber(now_s))
  end
  return { 'ok', r.status, r.thread_id }
end)
