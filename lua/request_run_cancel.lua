-- request_run_cancel(id, token): ask the run holding a claim to stop (CancelRequestMailboxStore,
-- src/contract/cancel-requests.ts). KEYS[2]: the record. ARGV: id, token.
-- When the dispatch is Claimed with `token`, the thread's hash gets `cancel` = token (replacing an earlier
-- request); the node holding the run reads it with the epoch and aborts the run. The record is unchanged.
-- Reply: {'ok', '1'} when recorded, {'ok'} otherwise (unknown id, another status, another claim).
return run(function()
  local id, token = arg(1), arg(2)
  local r = load(id)
  if r == nil then return { 'ok' } end
  check(r, id)
  if r.status ~= 'Claimed' or r.claim_token ~= token then return { 'ok' } end
  redis.call('HSET', k_thread(r.thread_id), 'cancel', token)
  return { 'ok', '1' }
end)
