-- extend_lease(id, token, extension, now): KEYS[2] record. ARGV: id, token, lease_until, now.
-- Reply: {'ok', '1'} extended, {'ok', '0'} not (missing, not Claimed, wrong token, or stale → Superseded).
return run(function()
  local id, token, lease_s, now_s = arg(1), arg(2), arg(3), arg(4)
  local r = load(id)
  if r == nil then return { 'ok', '0' } end
  check(r, id)
  if r.status ~= 'Claimed' or r.claim_token ~= token then return { 'ok', '0' } end
  local current = thread_epoch(r.thread_id)
  if tonumber(r.dispatch_epoch) < current then
    supersede(r, now_s, current, REASON_DURING_RENEWAL)
    return { 'ok', '0' }
  end
  write(r, { lease_until = lease_s, updated_at = now_s })
  redis.call('ZADD', K_LEASES, lease_s, id)
  return { 'ok', '1' }
end)
