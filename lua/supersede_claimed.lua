-- supersede_claimed(id, token, now, reason): KEYS[2] record. ARGV: id, token, now, reason.
-- Reply: {'ok'} (missing / not Claimed) or {'ok', record}; wrong token → VersionConflict{0,1}.
return run(function()
  local id, token, now_s, reason = arg(1), arg(2), arg(3), arg(4)
  local r = load(id)
  if r == nil then return { 'ok' } end
  check(r, id)
  if r.status ~= 'Claimed' then return { 'ok' } end
  if r.claim_token ~= token then raise('VersionConflict', 'expected 0, actual 1', 0, 1) end
  supersede(r, now_s, math.max(tonumber(r.dispatch_epoch), thread_epoch(r.thread_id)), reason)
  return { 'ok', flat(r) }
end)
