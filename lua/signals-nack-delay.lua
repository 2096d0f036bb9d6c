-- Redis Streams signals: nack with delay (standalone script, no prelude).
-- KEYS[1] signal stream, KEYS[2] delayed zset. ARGV[1] group, ARGV[2] entry id, ARGV[3] deliveries so far,
-- ARGV[4] delay in ms.
-- Only if this delivery is still pending: XACK + XDEL it and park {t, d, a, id} in the delayed zset at
-- server time + delay; a pull moves it back into the stream once due (signals-promote.lua).
-- Reply: 1 when parked, 0 when there was nothing to park.
local stream, delayed, group, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local entry = redis.call('XRANGE', stream, id, id)
local acked = redis.pcall('XACK', stream, group, id)
if type(acked) == 'table' and acked.err then acked = 0 end
redis.call('XDEL', stream, id)
if acked == 0 or not entry[1] then return 0 end
local t, d
local fields = entry[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 't' then t = fields[i + 1] elseif fields[i] == 'd' then d = fields[i + 1] end
end
if not t or not d then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local member = cjson.encode({ t = t, d = d, a = tonumber(ARGV[3]), id = id })
redis.call('ZADD', delayed, now + tonumber(ARGV[4]), member)
return 1
