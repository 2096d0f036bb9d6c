-- claim_dispatch_and_start(id, consumer, lease, now, instance): claim_dispatch then record_dispatch_start,
-- in one script (fused, src/contract/fused.ts). KEYS[2] record.
-- ARGV: id, consumer, token, now, lease_until, instance. Reply: {'ok'} (not claimed) or {'ok', started record}.
return run(function()
  local id, token, now_s = arg(1), arg(3), arg(4)
  local r = claim_by_id(id, arg(2), token, now_s, arg(5), arg(6))
  if r == nil then return { 'ok' } end
  return { 'ok', packed(r) }
end)
