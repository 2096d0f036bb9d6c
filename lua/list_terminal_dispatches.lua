-- list_terminal_dispatches(limit, offset): no extra KEYS. ARGV: limit, offset.
-- Ordered by updated_at, created_at, dispatch_id. Reply: {'ok', record-or-{dispatch_id}, ...} (read only).
return run(function()
  local limit, offset = tonumber(arg(1)), tonumber(arg(2))
  local out = { 'ok' }
  if limit == 0 then return out end
  for _, member in ipairs(redis.call('ZRANGE', K_TERMINAL, offset, offset + limit - 1)) do
    local id = string.sub(member, TERMINAL_ID_AT)
    local r = load(id)
    out[#out + 1] = r and flat(r) or { 'dispatch_id', id }
  end
  return out
end)
