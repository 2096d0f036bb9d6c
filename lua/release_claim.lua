-- release_claim(ref, token, now): hand a claim back without costing an attempt (HandBackMailboxStore,
-- src/contract/fused.ts). KEYS[2]: the record (mode 'dispatch') or the thread's Claimed set (mode 'thread').
-- ARGV: mode, id (the dispatch or the thread), token, now.
-- Every Claimed dispatch that `token` holds there goes back to Queued, available at `now`, attempt_count and
-- last_error unchanged, claim and runtime projection cleared (signalled by `transition`); one whose epoch is
-- older than its thread's is superseded instead, as every owner write does. A token holding nothing is not
-- an error. Everything is read and checked before the first write.
-- Reply: {'ok', record...} the records after the change.

-- Order key = 3-digit priority | 16-digit created_at | dispatch_id (lua/README.md): the id starts at byte 22.
local RELEASE_ID_AT = 22
local RELEASE_PROJECTION = { 'dispatch_instance_id', 'run_status', 'termination', 'run_response', 'run_error' }
local RELEASE_STALE = 'claimed dispatch superseded by newer dispatch epoch'

local function release_pairs(r)
  local out = {}
  for f, v in pairs(r) do
    out[#out + 1] = f
    out[#out + 1] = v
  end
  return out
end

return run(function()
  local mode, ref, token, now_s = arg(1), arg(2), arg(3), arg(4)
  local held = {}
  if mode == 'dispatch' then
    local r = load(ref)
    if r ~= nil then
      check(r, ref)
      if r.status == 'Claimed' and r.claim_token == token then held[1] = r end
    end
  elseif mode == 'thread' then
    for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      local id = string.sub(member, RELEASE_ID_AT)
      local r = load(id)
      if r == nil then
        raise('Serialization', "dispatch '" .. id .. "': indexed as Claimed on thread '" .. ref .. "' but the record is missing")
      end
      check(r, id)
      if r.status ~= 'Claimed' or r.thread_id ~= ref then
        raise('Serialization', "dispatch '" .. id .. "': indexed as Claimed on thread '" .. ref .. "' but the record is " .. r.status .. " on thread '" .. r.thread_id .. "'")
      end
      if r.claim_token == token then held[#held + 1] = r end
    end
  else
    raise('Validation', 'release_claim: unknown mode')
  end
  local epochs = {}
  for i, r in ipairs(held) do epochs[i] = thread_epoch(r.thread_id) end

  local out = { 'ok' }
  local now = tonumber(now_s)
  for i, r in ipairs(held) do
    local u
    if tonumber(r.dispatch_epoch) < epochs[i] then
      u = { status = 'Superseded', dispatch_epoch = string.format('%.0f', epochs[i]), last_error = RELEASE_STALE,
        completed_at = now_s, updated_at = now_s }
    else
      u = { status = 'Queued', available_at = now_s, completed_at = false, updated_at = now_s }
    end
    transition(r, cleared(cleared(u, CLAIM_FIELDS), RELEASE_PROJECTION), now)
    out[#out + 1] = release_pairs(r)
  end
  return out
end)
