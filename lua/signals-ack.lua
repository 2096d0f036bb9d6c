-- Redis Streams signals: ack a batch (standalone script, no prelude).
-- KEYS[1] signal stream. ARGV[1] group, ARGV[2..n] entry ids.
-- XACK, then XDEL so the stream only ever holds outstanding signals. Reply: XACK's count.
local ids = { unpack(ARGV, 2) }
if #ids == 0 then return 0 end
local acked = redis.pcall('XACK', KEYS[1], ARGV[1], unpack(ids))
if type(acked) == 'table' and acked.err then acked = 0 end
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
