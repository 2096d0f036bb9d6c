-- list_dispatches(thread, filter, limit, offset): KEYS[2..] the thread's per-status sets to merge.
-- ARGV: limit, offset, then the status of each extra key in order.
-- Reply: {'ok', status, record-or-{}, status, record-or-{}, ...} (read only; Node validates each record
-- and that it matches the status of the set it came from).
return run(function()
  local limit, offset = tonumber(arg(1)), tonumber(arg(2))
  local out = { 'ok' }
  if limit == 0 then return out end
  local want = offset + limit
  -- Each set is already in order; take the first `want` of each and merge (byte order, like ZRANGE).
  local heads = {}
  for i = 2, #KEYS do
    local members = redis.call('ZRANGE', KEYS[i], 0, want - 1)
    if #members > 0 then heads[#heads + 1] = { members = members, at = 1, status = arg(1 + i) } end
  end
  local function less(a, b)
    local n = math.min(#a, #b)
    for i = 1, n do
      local x, y = string.byte(a, i), string.byte(b, i)
      if x ~= y then return x < y end
    end
    return #a < #b
  end
  local taken = 0
  while taken < want do
    local best = nil
    for _, h in ipairs(heads) do
      local m = h.members[h.at]
      if m ~= nil and (best == nil or less(m, best.members[best.at])) then best = h end
    end
    if best == nil then break end
    taken = taken + 1
    if taken > offset then
      local id = string.sub(best.members[best.at], ORDER_ID_AT)
      local r = load(id)
      out[#out + 1] = best.status
      out[#out + 1] = r and flat(r) or { 'dispatch_id', id }
    end
    best.at = best.at + 1
  end
  return out
end)
