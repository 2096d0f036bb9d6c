-- Redis Streams signals: nack = redeliver now (standalone script, no prelude).
-- KEYS[1] signal stream. ARGV[1] group, ARGV[2] entry id, ARGV[3] deliveries so far.
-- Only if this delivery is still pending (not acked or nacked already): XACK + XDEL it and XADD a fresh
-- entry with the same `t` / `d` and `a` = deliveries so far, so the next delivery reports a + 1.
-- Reply: the new entry id, or false when there was nothing to requeue.
local stream, group, id = KEYS[1], ARGV[1], ARGV[2]
local entry = redis.call('XRANGE', stream, id, id)
local acked = redis.pcall('XACK', stream, group, id)
if type(acked) == 'table' and acked.err then acked = 0 end
redis.call('XDEL', stream, id)
if acked == 0 or not entry[1] then return false end
local t, d
local fields = entry[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 't' then t = fields[i + 1] elseif fields[i] == 'd' then d = fields[i + 1] end
end
if not t or not d then return false end
return redis.call('XADD', stream, '*', 't', t, 'd', d, 'a', ARGV[3])
