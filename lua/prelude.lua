-- awaken-mailbox: shared Lua prelude, concatenated in front of every script at load time.
-- Layout, calling convention and reply envelope: see lua/README.md.
--
-- KEYS[1] is the hash-tagged prefix of the namespace; script-specific keys follow as KEYS[2..].
-- ARGV[1..3] are the signal flags; script-specific arguments follow (use `arg(i)`).
-- The namespace's global keys (src/redis/keys.ts `scriptGlobals`) and the keys of ids only known inside a
-- script (a record found via an index, a thread read from a record) are derived from KEYS[1], so they always
-- share the slot of the keys passed in. (Each key an FCALL carries costs Redis ~1.5-2k instructions to
-- take in, measured with callgrind: not passing the 7 globals saved ~4 % of an enqueue's, 240.5k -> 229.9k.)

-- Per-call state. The prelude is loaded once as a Redis Functions library (or, on servers without
-- Functions, in front of every EVAL script); `begin` binds each call's KEYS and ARGV before its body runs.
local KEYS, ARGV
local PREFIX, K_COUNTS, K_LEASES, K_TERMINAL, K_QTHREADS, K_DUE, K_STREAM, K_DRAINED
-- '1' when the Redis Streams transport is active: a script that makes a dispatch claimable XADDs its signal.
local SIGNAL_STREAM
-- Set ('q' after the flag) when an enqueue onto a thread that holds a claim gets no signal (see `enter`);
-- a claim that ends without the same call claiming its thread again then hands the thread off (`hand_off`).
local QUIET_CLAIMED
-- Quiet mode, per call: thread id -> true for each thread whose claim ended in this call and that no claim
-- of the same call took again (false then), the threads in the order of their first release, and the
-- dispatches this call made Queued and signalled (their signal is sent already). Nil until needed.
local RELEASED, RELEASED_ORDER, SIGNALLED
-- Filled in after `leave` / `enter` (it reads the thread's sets); `run` calls it when a call ends.
local hand_off
-- Wall clock (ms) of the caller and republish delay, only for signal bookkeeping (never for state).
local SIGNAL_WALL, REPUBLISH_MS
-- Priority and created_at never change after enqueue, so a record's order key is computed once per call.
local ORDER_KEYS
-- Whether this call already checked the status counters (see `preflight`).
local COUNTERS_CHECKED
-- Status counter changes of this call, applied once when it ends (`count`, `flush_counts`): status -> sum
-- (false = unchanged), the COUNT_N statuses changed in the order of their first change, and the counters
-- `preflight` read (false = field absent), by STATUS_AT. The tables live as long as the library and are
-- reset after each call: a call allocates nothing for its counters.
local STATUSES = { 'Queued', 'Claimed', 'Acked', 'Cancelled', 'Superseded', 'DeadLetter' }
local STATUS_AT = { Queued = 1, Claimed = 2, Acked = 3, Cancelled = 4, Superseded = 5, DeadLetter = 6 }
local COUNT_DELTA = { Queued = false, Claimed = false, Acked = false, Cancelled = false, Superseded = false, DeadLetter = false }
local COUNT_ORDER, COUNT_N, COUNT_SEEN = {}, 0, nil
-- The last thread epoch this call read (see `thread_epoch`): thread id, value.
local EPOCH_T, EPOCH_V

-- tonumber of a record's decimal field. strtod made tonumber ~3 % of a chained completion's instructions
-- (callgrind): single digits (the usual counts, epochs, priorities) are found in a table, and a repeated
-- string (a call's `now`, read by each of its steps) is answered from the last conversion. Interned strings
-- compare by address, so both lookups are cheap; anything else still goes through tonumber. (A table of
-- 0..999 cost more in garbage collection, which marks every live object, than it saved.)
local SMALL_INT = { ['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6, ['7'] = 7, ['8'] = 8, ['9'] = 9 }
local LAST_INT_S, LAST_INT_V
local function int(s)
  local v = SMALL_INT[s]
  if v then return v end
  if s == LAST_INT_S then return LAST_INT_V end
  v = tonumber(s)
  LAST_INT_S, LAST_INT_V = s, v
  return v
end

-- Servers with RESP3 in scripts (Redis 6+, Valkey) answer HGETALL as a map, which Redis turns into a table
-- keyed by field in C: ~25 % less than the reply as a list plus the loop that builds the table in Lua
-- (measured in Redis 7.0: 11.1 -> 8.5 us per record of 15 fields). Every script starts in RESP2; `run`
-- switches back should a call fail between the two switches. Known from the first call on (a library
-- being loaded cannot look at `redis.setresp`; older servers have none).
local RESP3_MAPS

local function begin(keys, argv)
  KEYS, ARGV = keys, argv
  local p = keys[1]
  -- The names only change with the namespace: a library serving one namespace builds them once.
  if p ~= PREFIX then
    PREFIX = p
    K_COUNTS, K_LEASES, K_TERMINAL = p .. 'cnt', p .. 'lease', p .. 'term'
    K_QTHREADS, K_DUE, K_STREAM, K_DRAINED = p .. 'qthreads', p .. 'due', p .. 'sig:stream', p .. 'drained'
  end
  local flags = argv[1]
  SIGNAL_STREAM = flags == '1' or flags == '1q'
  QUIET_CLAIMED = flags == '0q' or flags == '1q'
  SIGNAL_WALL = int(argv[2]) or 0
  REPUBLISH_MS = int(argv[3]) or 0
  ORDER_KEYS = {}
  COUNTERS_CHECKED = false
  RELEASED, RELEASED_ORDER, SIGNALLED = nil, nil, nil
  -- `flush_counts` leaves every sum unchanged (false); a call that ended before it did cannot leak its sums.
  for i = 1, COUNT_N do COUNT_DELTA[COUNT_ORDER[i]] = false end
  COUNT_N, COUNT_SEEN = 0, nil
  EPOCH_T = nil
  if RESP3_MAPS == nil then
    local ok, setresp = pcall(function() return redis.setresp end)
    RESP3_MAPS = ok and setresp ~= nil
  end
end

local function arg(i)
  return ARGV[3 + i]
end

local function k_record(id) return PREFIX .. 'd:' .. id end
local function k_thread(t) return PREFIX .. 'th:' .. t end
local function k_ready(t) return PREFIX .. 'tq:' .. t end
local function k_waiting(t) return PREFIX .. 'tw:' .. t end
local function k_status(s, t) return PREFIX .. 'ts:' .. s .. ':' .. t end
local function k_dedupe(t) return PREFIX .. 'dd:' .. t end
local function k_stale(t) return PREFIX .. 'sq:' .. t end
-- The keys `claim_thread` works on: ready, waiting, Claimed set, stale-Queued set of thread `t`.
local function claim_keys(t) return { k_ready(t), k_waiting(t), k_status('Claimed', t), k_stale(t) } end

local MAX_SAFE = 9007199254740991
local MAX_U32 = 4294967295
local ORDER_ID_AT = 22    -- order key = 3-digit priority | 16-digit created_at | dispatch_id
local TERMINAL_ID_AT = 18 -- terminal key = 16-digit created_at | dispatch_id
-- Longest a consumer parks the signal of a dispatch not yet available (src/signals/filter.ts).
local MAX_PARKED_MS = 30000

local function is_terminal(s)
  return s == 'Acked' or s == 'Cancelled' or s == 'Superseded' or s == 'DeadLetter'
end

local function is_status(s)
  return s == 'Queued' or s == 'Claimed' or is_terminal(s)
end

local function is_run_status(s)
  return s == 'created' or s == 'running' or s == 'waiting' or s == 'done'
end

local PROJECTION = { 'dispatch_instance_id', 'run_status', 'termination', 'run_response', 'run_error' }

local REASON_QUEUED_BY_EPOCH = 'queued dispatch superseded by newer dispatch epoch'
local REASON_QUEUED_BY_INTERRUPT = 'queued dispatch superseded by interrupt'
local REASON_CLAIMED_BY_EPOCH = 'claimed dispatch superseded by newer dispatch epoch'
local REASON_BEFORE_START = 'claimed dispatch superseded before runtime start'
local REASON_BEFORE_RESULT = 'claimed dispatch superseded before run result'
local REASON_BEFORE_NACK = 'claimed dispatch superseded before nack'
local REASON_BEFORE_DEAD_LETTER = 'claimed dispatch superseded before dead letter'
local REASON_DURING_RENEWAL = 'claimed dispatch superseded during lease renewal'
local REASON_LEASE_AFTER_INTERRUPT = 'claimed dispatch lease expired after interrupt'
-- attempt_count after one more failure. A dispatch enqueued with attempt_count == max_attempts stays at
-- max_attempts (and dead-letters) instead of becoming max + 1, which would break the persist invariant.
local function failed_attempts(r)
  local count = int(r.attempt_count)
  return math.min(count + 1, MAX_U32, math.max(int(r.max_attempts), count))
end

local REASON_LEASE_MAX_ATTEMPTS = 'lease expired; max attempts reached'

-- ---- errors: raise() unwinds to run(), which turns it into the reply envelope ----

local function raise(kind, detail, expected, actual)
  error({ awaken = true, kind = kind, detail = detail, expected = expected, actual = actual }, 0)
end

local function corrupt(id, what)
  raise('Serialization', "dispatch '" .. id .. "': " .. what)
end

-- ---- status counters ----

-- Every transition changes two status counters. They are summed per call and applied once when the
-- call ends (`run`): one HINCRBY per status whose count changed, instead of two per transition, and none
-- for a claim chained after a completion on the same call (Claimed -1 then +1). `preflight` has checked
-- every counter before the first write, so the HINCRBYs cannot fail.
local function count(s, d)
  local sum = COUNT_DELTA[s]
  if sum == false then
    COUNT_N = COUNT_N + 1
    COUNT_ORDER[COUNT_N] = s
    sum = 0
  end
  COUNT_DELTA[s] = sum + d
end

local function flush_counts()
  local n = COUNT_N
  COUNT_N = 0
  for i = 1, n do
    local s = COUNT_ORDER[i]
    local d = COUNT_DELTA[s]
    COUNT_DELTA[s] = false
    -- A sum of 0 still writes a field that did not exist, as the -1 / +1 it replaces did (to '0').
    if d ~= 0 or not (COUNT_SEEN and COUNT_SEEN[STATUS_AT[s]]) then
      redis.call('HINCRBY', K_COUNTS, s, d == 1 and '1' or d == -1 and '-1' or string.format('%.0f', d))
    end
  end
end

-- Run a script body. Success: {'ok', ...}. Domain error: {'err', kind, detail, expected, actual}.
-- Writes made before a domain error stay (Redis scripts do not roll back): scripts validate before
-- they write, except where the contract wants the write (stale claim superseded + VersionConflict).
-- The status counters of the transitions made are applied in every case, so they always match the
-- records, even when a Redis error (a key of the wrong type) ends the script.
-- In quiet mode the threads whose claim ended are handed off in every case too (`hand_off`; should that
-- fail, as on a key of the wrong type, the call's own outcome stands and the sweeper signals the thread).
local function run(body)
  local ok, res = pcall(body)
  if ok then
    if RELEASED_ORDER then pcall(hand_off) end
    flush_counts()
    return res
  end
  if type(res) == 'table' and res.awaken then
    if RELEASED_ORDER then pcall(hand_off) end
    flush_counts()
    return { 'err', res.kind, res.detail, tostring(res.expected or ''), tostring(res.actual or '') }
  end
  if RESP3_MAPS then redis.setresp(2) end
  if RELEASED_ORDER then pcall(hand_off) end
  pcall(flush_counts)
  error(res, 0)
end

-- ---- numbers: records hold decimal strings; never hand a Lua number to redis.call ----

local function num(n)
  return string.format('%.0f', n)
end

-- num for the small indexes of range commands (redis.call itself formats a Lua number with snprintf).
local SMALL = { [0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9' }
local function index_arg(n)
  return SMALL[n] or num(n)
end

-- n -> n zeros, for `pad`.
local ZPAD = {
  [0] = '', '0', '00', '000', '0000', '00000', '000000', '0000000', '00000000', '000000000', '0000000000',
  '00000000000', '000000000000', '0000000000000', '00000000000000', '000000000000000', '0000000000000000',
}

-- Zero-pad a validated decimal string to `width` digits (normalizing hand-written leading zeros). A value
-- of exactly `width` digits is its own result (stripping its leading zeros and padding again changes nothing).
local function pad(v, width)
  local n = #v
  if n == width then return v end
  if n > 1 and string.byte(v, 1) == 48 then
    v = num(tonumber(v))
    n = #v
  end
  return (ZPAD[width - n] or '') .. v
end

local function is_int(v)
  if type(v) ~= 'string' then return false end
  local n = #v
  -- Anchored, so one pass over the digits (an unanchored search restarts at every byte); a range class is
  -- cheaper for Lua's matcher than %d.
  if n == 0 or n > 16 or not string.find(v, '^[0-9]+$') then return false end
  return n < 16 or tonumber(v) <= MAX_SAFE
end

-- Whether every integer field of r (the seven required ones, lease_until and completed_at when present) is
-- a run of 1 to 15 digits: the lengths are checked one by one, the digits with ONE pattern over the fields
-- joined without separators (only digits joined give only digits). One class repeated is the cheapest match
-- for Lua's matcher: half the time of a pattern with a digit run per field (measured in Redis' Lua).
-- `check` answers false by testing the fields one by one (the first bad field names the error; 16 digits
-- can still be safe).
local function ints_ok(r)
  local p, e, a, c, m, cr, u = r.priority, r.dispatch_epoch, r.available_at, r.attempt_count, r.max_attempts,
    r.created_at, r.updated_at
  if not (p and e and a and c and m and cr and u) then return false end
  local np, ne, na, nc, nm, ncr, nu = #p, #e, #a, #c, #m, #cr, #u
  if np == 0 or ne == 0 or na == 0 or nc == 0 or nm == 0 or ncr == 0 or nu == 0 then return false end
  if np > 15 or ne > 15 or na > 15 or nc > 15 or nm > 15 or ncr > 15 or nu > 15 then return false end
  local l, d = r.lease_until, r.completed_at
  if l and (#l == 0 or #l > 15) then return false end
  if d and (#d == 0 or #d > 15) then return false end
  local s
  if l and d then
    s = p .. e .. a .. c .. m .. cr .. u .. l .. d
  elseif l then
    s = p .. e .. a .. c .. m .. cr .. u .. l
  elseif d then
    s = p .. e .. a .. c .. m .. cr .. u .. d
  else
    s = p .. e .. a .. c .. m .. cr .. u
  end
  return string.find(s, '^[0-9]+$') ~= nil
end

local function blank(v)
  return v == nil or string.find(v, '%S') == nil
end

-- ---- records ----

local function load(id)
  if RESP3_MAPS then
    redis.setresp(3)
    local r = redis.call('HGETALL', k_record(id)).map
    redis.setresp(2)
    if next(r) == nil then return nil end
    return r
  end
  local flat = redis.call('HGETALL', k_record(id))
  if #flat == 0 then return nil end
  -- The constructor sizes the table for a whole record at once (filling an empty one rehashes it at 1, 2,
  -- 4, 8 and 16 fields); keys left nil are absent fields, as in any table.
  local r = {
    dispatch_id = nil, thread_id = nil, run_id = nil, status = nil, priority = nil, dispatch_epoch = nil,
    available_at = nil, attempt_count = nil, max_attempts = nil, created_at = nil, updated_at = nil,
    lease_until = nil, completed_at = nil, claim_token = nil, claimed_by = nil, dispatch_instance_id = nil,
    run_status = nil, termination = nil, run_response = nil, run_error = nil, last_error = nil, dedupe_key = nil,
  }
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  return r
end

local function flat(r)
  local out, n = {}, 0
  for f, v in pairs(r) do
    out[n + 1], out[n + 2], n = f, v, n + 2
  end
  return out
end

-- The fields of a record, as `load`'s constructor names them (the codec knows no others).
local RECORD_FIELDS = {
  'status', 'dispatch_epoch', 'dispatch_id', 'thread_id', 'run_id', 'priority', 'available_at', 'attempt_count',
  'max_attempts', 'created_at', 'updated_at', 'lease_until', 'completed_at', 'claim_token', 'claimed_by',
  'dispatch_instance_id', 'run_status', 'termination', 'run_response', 'run_error', 'last_error', 'dedupe_key',
}

-- A record for a reply: its pairs joined by NUL bytes into one string, which costs the client far less
-- to decode than a list of ~40 entries. A record with a NUL byte in a name or value (an error text or a
-- response may hold one) is answered as the list, so the client's split is exact. The pairs are read by
-- name from RECORD_FIELDS (a field the codec does not know is left out: it would ignore it) and gathered
-- in a list kept for the library's life (`table.concat` takes its first n entries): `pairs` calls `next`
-- once per field, and that made packing a record ~4.5 µs in Redis' Lua.
local PACK_ARGS = {}
local function packed(r)
  local out, n = PACK_ARGS, 0
  for i = 1, #RECORD_FIELDS do
    local f = RECORD_FIELDS[i]
    local v = r[f]
    if v ~= nil then out[n + 1], out[n + 2], n = f, v, n + 2 end
  end
  -- One plain search of the joined entries (memchr) costs far less than counting the NULs of the packed
  -- string with a pattern (measured: ~6 % of a chained completion's instructions in Redis).
  if string.find(table.concat(out, '', 1, n), '\0', 1, true) then return { unpack(out, 1, n) } end
  return table.concat(out, '\0', 1, n)
end

-- The integer fields of a record, in the order `check` tests them; the last two are optional.
local INT_FIELDS = {
  'priority', 'dispatch_epoch', 'available_at', 'attempt_count', 'max_attempts', 'created_at', 'updated_at',
  'lease_until', 'completed_at',
}

-- validate_for_persist plus field types (the persist invariants), so no script transitions a corrupt record.
-- (Node decodes every record it returns with the full codec; here `termination` only needs to look like
-- a tagged JSON object.)
local function check(r, id)
  if r.dispatch_id ~= id then corrupt(id, 'dispatch_id field does not match its key') end
  if blank(r.thread_id) then corrupt(id, 'thread_id is missing or blank') end
  if blank(r.run_id) then corrupt(id, 'run_id is missing or blank') end
  local status = r.status
  if not is_status(status) then corrupt(id, 'status is not a RunDispatchStatus') end
  if not ints_ok(r) then
    for i = 1, #INT_FIELDS do
      local f = INT_FIELDS[i]
      if (i <= 7 or r[f] ~= nil) and not is_int(r[f]) then
        corrupt(id, f .. ' is missing or not a non-negative safe integer')
      end
    end
  end
  -- Digits only by now: one or two of them are in range without a tonumber.
  local p = r.priority
  if #p > 2 and int(p) > 255 then corrupt(id, 'priority must be in 0..=255') end
  local max = int(r.max_attempts)
  if max < 1 or max > MAX_U32 then corrupt(id, 'max_attempts must be in 1..=u32::MAX') end
  if int(r.attempt_count) > max then corrupt(id, 'attempt_count must not exceed max_attempts') end
  if r.run_status ~= nil and not is_run_status(r.run_status) then corrupt(id, 'run_status is not a RunStatus') end
  if r.termination ~= nil and not string.find(r.termination, '^{.*"type"%s*:%s*"[%w_]+".*}$') then
    corrupt(id, 'termination is not a TerminationReason')
  end
  local claim = r.claim_token ~= nil or r.claimed_by ~= nil or r.lease_until ~= nil
  if status == 'Queued' then
    if claim then corrupt(id, 'Queued dispatch must not carry claim fields') end
    if r.completed_at ~= nil then corrupt(id, 'Queued dispatch must not carry completed_at') end
    for i = 1, #PROJECTION do
      if r[PROJECTION[i]] ~= nil then corrupt(id, 'Queued dispatch must not carry runtime result fields') end
    end
  elseif status == 'Claimed' then
    if blank(r.claim_token) or blank(r.claimed_by) or r.lease_until == nil then
      corrupt(id, 'Claimed dispatch must carry claim_token, claimed_by, and lease_until')
    end
  else
    if claim then corrupt(id, status .. ' dispatch must not carry active lease fields') end
    if r.completed_at == nil then corrupt(id, status .. ' dispatch must carry completed_at') end
  end
end

-- Load and validate a record an index points at; a missing record is corruption, not absence.
local function load_indexed(id, expect_status, where)
  local r = load(id)
  if r == nil then corrupt(id, 'indexed in ' .. where .. ' but the record is missing') end
  check(r, id)
  if expect_status ~= nil and r.status ~= expect_status then
    corrupt(id, 'indexed as ' .. expect_status .. ' in ' .. where .. ' but the record is ' .. r.status)
  end
  return r
end

local function order_key(r)
  local k = ORDER_KEYS[r.dispatch_id]
  if k == nil then
    k = pad(r.priority, 3) .. '|' .. pad(r.created_at, 16) .. '|' .. r.dispatch_id
    ORDER_KEYS[r.dispatch_id] = k
  end
  return k
end

local function terminal_key(r)
  return pad(r.created_at, 16) .. '|' .. r.dispatch_id
end

-- A counter HINCRBY can raise on ("ERR hash value is not an integer"): only decimal integers pass.
-- (Redis parses them strictly: no leading zeros, no "-0", at most 64 bits.)
local function is_counter(v)
  if v == false or v == nil or v == '0' then return true end
  return #v <= 18 and string.find(v, '^%-?[1-9]%d*$') ~= nil
end

-- Redis does not roll a script back when it raises, so every script reads and checks everything it
-- needs before its first write. `transition` calls this before it writes anything: the status counters
-- it will HINCRBY must be integers (once per call, all statuses, so a script with several transitions
-- has checked them all before the first).
local function preflight()
  if COUNTERS_CHECKED then return end
  local v = redis.call('HMGET', K_COUNTS, unpack(STATUSES))
  for i = 1, #STATUSES do
    if not is_counter(v[i]) then
      raise('Serialization', "status counter '" .. STATUSES[i] .. "' is not an integer")
    end
  end
  COUNT_SEEN = v
  COUNTERS_CHECKED = true
end

-- The epoch field `e` of thread `t`'s hash (absent = 0), checked.
local function epoch_value(t, e)
  if not e then return 0 end
  if not is_int(e) then raise('Serialization', "thread '" .. t .. "': epoch is not a non-negative safe integer") end
  return int(e)
end

-- The last epoch this call read: a claim chained after a completion on the same thread reads it again.
-- `forget_epoch` must follow every write of a thread's epoch (interrupt) or deletion of its hash (purges).
local function thread_epoch(t)
  if t == EPOCH_T then return EPOCH_V end
  local e = epoch_value(t, redis.call('HGET', k_thread(t), 'epoch'))
  EPOCH_T, EPOCH_V = t, e
  return e
end

local function forget_epoch()
  EPOCH_T = nil
end

-- The record count field `n` of thread `t`'s hash must be one HINCRBY accepts.
local function check_record_count(t, n)
  if not is_counter(n) then raise('Serialization', "thread '" .. t .. "': record count n is not an integer") end
end

-- Apply field updates (value false = clear the field) to the record table and its hash. The argument lists
-- are built in two tables kept for the library's life (`unpack` takes their first n entries): new tables
-- grown entry by entry cost Redis more than the HSET itself (callgrind).
local HSET_ARGS, HDEL_ARGS = {}, {}
local function write(r, updates)
  local hset, hdel, ns, nd = HSET_ARGS, HDEL_ARGS, 0, 0
  for f, v in pairs(updates) do
    if v == false then
      -- Only fields the record has: an HDEL of absent fields would be a wasted call on the hot path.
      if r[f] ~= nil then
        r[f] = nil
        nd = nd + 1
        hdel[nd] = f
      end
    elseif r[f] ~= v then
      -- A field already holding its value is left alone: each field an HSET names costs a scan of the
      -- record's listpack (a completion rewrites the dispatch_instance_id the start wrote, for one).
      r[f] = v
      hset[ns + 1], hset[ns + 2], ns = f, v, ns + 2
    end
  end
  local key = k_record(r.dispatch_id)
  if ns > 0 then redis.call('HSET', key, unpack(hset, 1, ns)) end
  if nd > 0 then redis.call('HDEL', key, unpack(hdel, 1, nd)) end
end

-- ---- indexes ----

local function release_dedupe(r)
  if r.dedupe_key ~= nil then
    local k = k_dedupe(r.thread_id)
    if redis.call('HGET', k, r.dedupe_key) == r.dispatch_id then redis.call('HDEL', k, r.dedupe_key) end
  end
end

local function signal(r)
  if SIGNAL_STREAM then redis.call('XADD', K_STREAM, '*', 't', r.thread_id, 'd', r.dispatch_id) end
end

-- Remove r from the indexes of its current status.
local function leave(r)
  local s, t, okey = r.status, r.thread_id, order_key(r)
  redis.call('ZREM', k_status(s, t), okey)
  count(s, -1)
  if s == 'Queued' then
    if redis.call('ZREM', k_ready(t), okey) == 0 then redis.call('ZREM', k_waiting(t), okey) end
    if redis.call('ZCARD', k_status('Queued', t)) == 0 then redis.call('ZREM', K_QTHREADS, t) end
    redis.call('ZREM', K_DUE, r.dispatch_id)
  elseif s == 'Claimed' then
    redis.call('ZREM', K_LEASES, r.dispatch_id)
    if QUIET_CLAIMED then
      if RELEASED_ORDER == nil then RELEASED, RELEASED_ORDER = {}, {} end
      if RELEASED[t] == nil then RELEASED_ORDER[#RELEASED_ORDER + 1] = t end
      RELEASED[t] = true
    end
  else
    redis.call('ZREM', K_TERMINAL, terminal_key(r))
  end
end

-- Add r to the indexes of its (new) status. A Queued dispatch goes to the ready set when it is available
-- at `now` (number), or, for enqueue which has no `now`, at its own updated_at; otherwise to waiting. The
-- ready set is only a hint: claim re-checks available_at and moves an early entry back to waiting.
-- With `quiet_if_claimed` (enqueue) and the store's `quietClaimedThreads`, a Queued dispatch whose thread
-- holds a claim gets no signal: the claim's holder takes the thread's next dispatch in its chained
-- completion, a claim that ends otherwise hands the thread off (`hand_off`), and the `due` entry stays as
-- the sweeper's backstop. Answers false when it withheld the signal so.
local function enter(r, now, quiet_if_claimed)
  local s, t, okey = r.status, r.thread_id, order_key(r)
  redis.call('ZADD', k_status(s, t), '0', okey)
  count(s, 1)
  if s == 'Queued' then
    local avail = int(r.available_at)
    if avail <= (now or int(r.updated_at)) then
      redis.call('ZADD', k_ready(t), '0', okey)
    else
      redis.call('ZADD', k_waiting(t), r.available_at, okey)
    end
    -- Members only (readers ignore scores). A thread is listed while its Queued set is not empty (`leave`
    -- drops it when the set empties), so only the dispatch that makes the set non-empty adds it: the
    -- ZCARD is O(1), a ZADD of a present member searches the whole index.
    if redis.call('ZCARD', k_status('Queued', t)) == 1 then redis.call('ZADD', K_QTHREADS, '0', t) end
    -- Signalled now (below or by the caller), so the sweeper owes it a republish only once it is
    -- available and the last signal is older than the republish delay.
    redis.call('ZADD', K_DUE, num(math.max(avail, SIGNAL_WALL + REPUBLISH_MS)), r.dispatch_id)
    if QUIET_CLAIMED then
      if quiet_if_claimed and redis.call('ZCARD', k_status('Claimed', t)) > 0 then return false end
      SIGNALLED = SIGNALLED or {}
      SIGNALLED[r.dispatch_id] = true
    end
    signal(r)
  elseif s == 'Claimed' then
    redis.call('ZADD', K_LEASES, r.lease_until, r.dispatch_id)
    if RELEASED and RELEASED[t] then RELEASED[t] = false end
  else
    redis.call('ZADD', K_TERMINAL, r.updated_at, terminal_key(r))
    release_dedupe(r)
  end
end

-- Quiet mode: a thread whose claim ended in this call without the call claiming it again may hold Queued
-- dispatches enqueued while it was claimed, which got no signal. Its head is signalled now: the first of
-- its ready set, else the earliest of its waiting set (a consumer parks that signal until it is available).
-- With Redis Streams the signal is XADDed here; with JetStream (published by Node) the head is made due at
-- once in the `due` index and the store has the sweeper run soon. A head this call signalled already (a
-- requeue) is left alone.
hand_off = function()
  local order = RELEASED_ORDER
  RELEASED_ORDER = nil
  for i = 1, #order do
    local t = order[i]
    -- Still free: no claim of this call took it again, and no other claim holds it (a claim of several).
    if RELEASED[t] and redis.call('ZCARD', k_status('Claimed', t)) == 0 then
      local id, due, now
      local head = redis.call('ZRANGE', k_ready(t), '0', '0')[1]
      if head then
        id, due, now = string.sub(head, ORDER_ID_AT), SIGNAL_WALL, true
      else
        local w = redis.call('ZRANGE', k_waiting(t), '0', '0', 'WITHSCORES')
        if w[1] then
          -- Signalled now like a ready head (a consumer parks it until it is available) unless it waits
          -- longer than a consumer parks a signal: then the sweeper signals it once available.
          local avail = tonumber(w[2])
          id = string.sub(w[1], ORDER_ID_AT)
          now = avail - SIGNAL_WALL <= MAX_PARKED_MS
          due = now and SIGNAL_WALL or avail
        end
      end
      if id and not (SIGNALLED and SIGNALLED[id]) then
        if SIGNAL_STREAM and now then
          redis.call('XADD', K_STREAM, '*', 't', t, 'd', id)
          due = math.max(due, SIGNAL_WALL + REPUBLISH_MS)
        end
        redis.call('ZADD', K_DUE, num(due), id)
      end
    end
  end
end

-- Delete terminal record r with its index entries and count; a thread left without records loses its
-- keys (epoch, dedupe, stale set). Shared by purge_terminal and purge_dead_letters.
local function delete_terminal(r)
  local t = r.thread_id
  redis.call('ZREM', K_TERMINAL, terminal_key(r))
  redis.call('ZREM', k_status(r.status, t), order_key(r))
  redis.call('HINCRBY', K_COUNTS, r.status, -1)
  redis.call('DEL', k_record(r.dispatch_id))
  if tonumber(redis.call('HINCRBY', k_thread(t), 'n', -1)) <= 0 then
    redis.call('DEL', k_thread(t), k_dedupe(t), k_stale(t))
    forget_epoch()
  end
end

-- Threads interrupted while empty (K_DRAINED) that still hold no records lose their epoch hash.
local function drop_drained_threads()
  for _, t in ipairs(redis.call('SMEMBERS', K_DRAINED)) do
    local n = redis.call('HGET', k_thread(t), 'n')
    if not n or (tonumber(n) or 0) <= 0 then
      redis.call('DEL', k_thread(t))
      forget_epoch()
    end
  end
  redis.call('DEL', K_DRAINED)
end

local function transition(r, updates, now)
  preflight()
  leave(r)
  write(r, updates)
  enter(r, now)
end

local function cleared(updates, fields)
  for i = 1, #fields do updates[fields[i]] = false end
  return updates
end

local CLAIM_FIELDS = { 'claim_token', 'claimed_by', 'lease_until' }

-- Superseded at `epoch` (nil = keep dispatch_epoch) with `reason` (nil = keep last_error).
local function supersede(r, now_s, epoch, reason)
  local u = cleared(cleared({ status = 'Superseded', completed_at = now_s, updated_at = now_s }, CLAIM_FIELDS), PROJECTION)
  if epoch ~= nil then u.dispatch_epoch = num(epoch) end
  if reason ~= nil then u.last_error = reason end
  transition(r, u, int(now_s))
end

-- Owner-side guard shared by ack / nack / dead_letter / record_*: missing → NotFound, token mismatch →
-- VersionConflict{0,1} (checked first, memory semantics), stale epoch → Superseded + VersionConflict.
local function owner_guard(id, token, now_s, stale_reason, require_claimed)
  local r = load(id)
  if r == nil then raise('NotFound', id) end
  check(r, id)
  if (require_claimed and r.status ~= 'Claimed') or r.claim_token ~= token then
    raise('VersionConflict', 'expected 0, actual 1', 0, 1)
  end
  local current = thread_epoch(r.thread_id)
  local epoch = int(r.dispatch_epoch)
  if epoch < current then
    supersede(r, now_s, current, stale_reason)
    raise('VersionConflict', 'expected ' .. num(epoch) .. ', actual ' .. num(current), num(epoch), num(current))
  end
  return r
end

-- Move every waiting dispatch with available_at <= now into the ready set (each is promoted once).
local function promote(t, now_s)
  local due = redis.call('ZRANGEBYSCORE', k_waiting(t), '-inf', now_s)
  if #due == 0 then return end
  for i = 1, #due, 256 do
    local args = {}
    for j = i, math.min(i + 255, #due) do
      args[#args + 1] = '0'
      args[#args + 1] = due[j]
    end
    redis.call('ZADD', k_ready(t), unpack(args))
  end
  redis.call('ZREMRANGEBYSCORE', k_waiting(t), '-inf', now_s)
end

-- ---- operations shared by a method's script and the fused scripts (claim_and_start, ...) ----

-- Fields record_dispatch_start writes (status stays Claimed). Fused scripts merge them into the claim's
-- own write: a start right after the claim, with the claim's token, always passes the owner guard. The
-- constructor also reserves the slots of the claim's fields (a key set to nil stays in the table), so
-- `claim_updates` fills them without growing the table.
local function start_updates(instance, now_s)
  return {
    dispatch_instance_id = instance, run_status = 'running', termination = false, run_response = false,
    run_error = false, completed_at = false, updated_at = now_s,
    status = nil, claim_token = nil, claimed_by = nil, lease_until = nil,
  }
end

-- One constructor either way, so the table is sized once (a table grown key by key is rehashed as it grows).
local function claim_updates(consumer, token, now_s, lease_s, instance)
  if not instance then
    return { status = 'Claimed', claim_token = token, claimed_by = consumer, lease_until = lease_s, updated_at = now_s }
  end
  local u = start_updates(instance, now_s)
  u.status, u.claim_token, u.claimed_by, u.lease_until = 'Claimed', token, consumer, lease_s
  return u
end

-- claim of up to `limit` dispatches of thread `t`; `keys` = the thread's ready,
-- waiting, Claimed-set and stale-Queued-set keys (passed in KEYS by the caller). Returns the claimed
-- records, already written, in claim order. With `instance`, each claimed record is also started
-- (record_dispatch_start) in the same write.
local function claim_thread(t, consumer, token, now_s, lease_s, limit, keys, instance)
  local ready, waiting, claimed_set, stale_set = keys[1], keys[2], keys[3], keys[4]
  local now = int(now_s)
  local current = thread_epoch(t)
  preflight()
  -- The stale set, the waiting set and the Claimed set are usually all absent (Redis deletes an emptied
  -- set): a thread worked through by chained completions, an idle thread's first claim. One EXISTS then
  -- answers for the three reads below, each of which would find nothing (two calls fewer per claim).
  if redis.call('EXISTS', stale_set, waiting, claimed_set) > 0 then
    -- Stale Queued dispatches listed for the thread are superseded first, whatever the limit, their
    -- availability or the thread's claims (as the memory store does). Entries that are no longer Queued
    -- and stale are simply forgotten.
    local listed = redis.call('SMEMBERS', stale_set)
    if #listed > 0 then
      local stale = {}
      for _, id in ipairs(listed) do
        local r = load(id)
        if r ~= nil then
          check(r, id)
          if r.status == 'Queued' and r.thread_id == t and int(r.dispatch_epoch) < current then
            stale[#stale + 1] = r
          end
        end
      end
      redis.call('DEL', stale_set)
      for _, r in ipairs(stale) do supersede(r, now_s, current, REASON_QUEUED_BY_EPOCH) end
    end
    promote(t, now_s)
    -- Thread exclusivity: any Claimed dispatch (even lease-expired or stale) blocks the thread.
    if redis.call('ZCARD', claimed_set) > 0 then return {} end
  end
  if limit == 0 then return {} end
  -- Read and check every entry first; write only once nothing more can raise.
  -- stale and early are rare: their lists are only made when needed.
  local chosen, stale, early = {}, nil, nil
  local seen = 0
  while #chosen < limit do
    local batch = redis.call('ZRANGE', ready, index_arg(seen), index_arg(seen + (limit - #chosen) - 1))
    if #batch == 0 then break end
    for _, member in ipairs(batch) do
      seen = seen + 1
      local r = load_indexed(string.sub(member, ORDER_ID_AT), 'Queued', 'the ready set of its thread')
      if int(r.dispatch_epoch) < current then
        -- Stale Queued dispatch written outside the scripts and not listed as such: never claimable.
        stale = stale or {}
        stale[#stale + 1] = r
      elseif int(r.available_at) > now then
        -- Promoted by a claim with a later `now` than this one: back to waiting.
        early = early or {}
        early[#early + 1] = { member = member, available_at = r.available_at }
      else
        chosen[#chosen + 1] = r
      end
    end
  end
  if stale then
    for _, r in ipairs(stale) do supersede(r, now_s, current, REASON_QUEUED_BY_EPOCH) end
  end
  if early then
    for _, e in ipairs(early) do
      redis.call('ZREM', ready, e.member)
      redis.call('ZADD', waiting, e.available_at, e.member)
    end
  end
  for _, r in ipairs(chosen) do
    transition(r, claim_updates(consumer, token, now_s, lease_s, instance), now)
  end
  return chosen
end

-- claim_dispatch: the claimed record, or nil. available_at is ignored (inline claim by id).
local function claim_by_id(id, consumer, token, now_s, lease_s, instance)
  local r = load(id)
  if r == nil then return nil end
  check(r, id)
  if r.status ~= 'Queued' then return nil end
  local current = thread_epoch(r.thread_id)
  if int(r.dispatch_epoch) < current then
    supersede(r, now_s, current, REASON_QUEUED_BY_EPOCH)
    return nil
  end
  if redis.call('ZCARD', k_status('Claimed', r.thread_id)) > 0 then return nil end
  transition(r, claim_updates(consumer, token, now_s, lease_s, instance), int(now_s))
  return r
end

-- record_dispatch_start: status stays Claimed. Returns the written record.
local function start_dispatch(id, token, instance, now_s)
  local r = owner_guard(id, token, now_s, REASON_BEFORE_START, true)
  write(r, start_updates(instance, now_s))
  return r
end

-- record_run_result: the result is the 8 script arguments from arg(first): run_id, dispatch_instance_id,
-- status, then (flag, value) for termination (JSON), response and error; flag '1' = present, '0' = null.
-- Status stays Claimed. Returns the written record.
-- claim(limit 1) on thread t then record_dispatch_start on the claimed record, with the claim's token
-- (the fused claim_and_start). `keys`: the thread's ready, waiting, Claimed and stale-Queued sets.
-- Returns the started record, or nil when nothing was claimed.
local function claim_and_start_thread(t, consumer, token, now_s, lease_s, instance, keys)
  return claim_thread(t, consumer, token, now_s, lease_s, 1, keys, instance)[1]
end

-- The checked record and the fields record_run_result writes; nothing is written yet. With `ack`, also the
-- fields of the ack that follows it (complete_and_ack), in the same table: the constructor reserves their
-- slots (a key set to nil stays in the table), so setting them does not grow it.
local function result_updates(id, token, now_s, first, ack)
  local r = owner_guard(id, token, now_s, REASON_BEFORE_RESULT, true)
  local run_id = arg(first)
  if run_id ~= r.run_id then
    raise('Validation', "dispatch '" .. id .. "' result run_id '" .. run_id .. "' does not match '" .. r.run_id .. "'")
  end
  local a = first + 3 -- ARGV index of arg(first)
  local u = {
    dispatch_instance_id = ARGV[a + 1], run_status = ARGV[a + 2],
    termination = ARGV[a + 3] == '1' and ARGV[a + 4], run_response = ARGV[a + 5] == '1' and ARGV[a + 6],
    run_error = ARGV[a + 7] == '1' and ARGV[a + 8], completed_at = now_s, updated_at = now_s,
    status = nil, claim_token = nil, claimed_by = nil, lease_until = nil,
  }
  if ack then u.status, u.claim_token, u.claimed_by, u.lease_until = 'Acked', false, false, false end
  return r, u
end

local function record_result(id, token, now_s, first)
  local r, u = result_updates(id, token, now_s, first, false)
  write(r, u)
  return r
end

local function ack_dispatch(id, token, now_s)
  local r = owner_guard(id, token, now_s, REASON_CLAIMED_BY_EPOCH, false)
  transition(r, cleared({ status = 'Acked', completed_at = now_s, updated_at = now_s }, CLAIM_FIELDS), int(now_s))
  return r
end

-- record_run_result then ack (the fused complete_and_ack), as one write: the ack right after a result
-- recorded with the same token always passes its owner guard (the record is still Claimed by that token
-- at the epoch the result's guard just checked).
local function complete_and_ack(id, token, now_s, first)
  local r, u = result_updates(id, token, now_s, first, true)
  transition(r, u, int(now_s))
  return r
end

-- ---- chained completion, shared by complete_and_claim_next and complete_and_claim_next_many ----

-- complete_and_claim_next with its 17 arguments at ARGV[base + 1 .. base + 17] (see that script's header):
-- complete_and_ack, then claim_and_start on the next thread. Answers the script's reply. (Called by
-- `each_call` with the index of the last argument too, which a fixed count does not need.)
local function complete_and_claim_next_at(base)
  local id, token, now_s = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  -- complete_and_ack reads the result at arg(first) = ARGV[3 + first], i.e. ARGV[base + 4].
  complete_and_ack(id, token, now_s, base + 1)
  local t = ARGV[base + 13]
  local ok, res = pcall(claim_and_start_thread, t, ARGV[base + 14], ARGV[base + 15], now_s, ARGV[base + 16],
    ARGV[base + 17], claim_keys(t))
  if not ok then
    if type(res) == 'table' and res.awaken then return { 'ok', 'claim-err', res.kind, res.detail } end
    error(res, 0)
  end
  if res == nil then return { 'ok' } end
  return { 'ok', packed(res) }
end

-- One call of a batch script that failed: its reply entry. A domain error is the error envelope `run`
-- answers; any other error (a Redis error) is {'redis', message}. The mode a failing `load` may have left
-- is reset, so the next call of the batch starts as a script does.
local function batch_failure(err)
  if RESP3_MAPS then redis.setresp(2) end
  if type(err) == 'table' and err.awaken then
    return { 'err', err.kind, err.detail, tostring(err.expected or ''), tostring(err.actual or '') }
  end
  return { 'redis', type(err) == 'table' and tostring(err.err) or tostring(err) }
end

-- The body of a batch script (enqueue_many, complete_and_claim_next_many): ARGV after the flags holds, for
-- each call, the number of its arguments and then the arguments. `call(base, last)` runs one call on
-- ARGV[base + 1 .. last] and answers its script's reply; each runs on its own, in order, and failures are
-- answered by `batch_failure`. Reply: {'ok', reply, reply, ...}, one per call.
local function each_call(call)
  local out, at, n = { 'ok' }, 4, #ARGV
  while at <= n do
    local last = at + tonumber(ARGV[at])
    local ok, res = pcall(call, at, last)
    out[#out + 1] = ok and res or batch_failure(res)
    at = last + 1
  end
  return out
end

-- ---- enqueue (one dispatch), shared by enqueue and enqueue_many ----

-- Enqueue the dispatch whose `enqueueArgs` are ARGV[base + 1 .. last]: the values of dispatch_id, thread_id,
-- run_id, priority, available_at, attempt_count, max_attempts, created_at and updated_at, in that order,
-- then field/value pairs for dedupe_key and last_error when not null (all validated by the caller). Status
-- and epoch are set here. The record is written straight from ARGV with the field names as constants: a
-- table built from field/value pairs and flattened again, and the names sent with every call, cost Redis
-- ~13 % of an enqueue (callgrind). Answers {'ok'}, or {'ok', 'quiet'} when the thread holds a claim and
-- the dispatch got no signal (see `enter`; the JetStream caller then publishes none either); raises
-- AlreadyExists("dedupe_key=<key>") / AlreadyExists(<dispatch_id>) before writing anything.
local function enqueue_at(base, last)
  local id, t = ARGV[base + 1], ARGV[base + 2]
  local dedupe = nil
  for i = base + 10, last - 1, 2 do
    if ARGV[i] == 'dedupe_key' then dedupe = ARGV[i + 1] end
  end
  local k_rec, k_th = k_record(id), k_thread(t)
  local k_dd = dedupe ~= nil and k_dedupe(t)
  if dedupe ~= nil then
    local holder = redis.call('HGET', k_dd, dedupe)
    if holder then
      -- The index only holds non-terminal holders; re-check the record so a stale entry never blocks.
      local status = redis.call('HGET', k_record(holder), 'status')
      if status == 'Queued' or status == 'Claimed' then raise('AlreadyExists', 'dedupe_key=' .. dedupe) end
    end
  end
  if redis.call('EXISTS', k_rec) == 1 then raise('AlreadyExists', id) end
  local thread = redis.call('HMGET', k_th, 'epoch', 'n')
  local epoch = epoch_value(t, thread[1])
  -- The stored decimal as it is, unless leading zeros need normalizing (string.format is not free).
  local dispatch_epoch
  if not thread[1] then
    dispatch_epoch = '0'
  elseif #thread[1] == 1 or string.byte(thread[1], 1) ~= 48 then
    dispatch_epoch = thread[1]
  else
    dispatch_epoch = num(epoch)
  end
  check_record_count(t, thread[2])
  preflight()
  -- Status first: the later transitions find it (and rewrite it) at the front of the hash.
  redis.call('HSET', k_rec, 'status', 'Queued', 'dispatch_epoch', dispatch_epoch, 'dispatch_id', id, 'thread_id', t,
    'run_id', ARGV[base + 3], 'priority', ARGV[base + 4], 'available_at', ARGV[base + 5],
    'attempt_count', ARGV[base + 6], 'max_attempts', ARGV[base + 7], 'created_at', ARGV[base + 8],
    'updated_at', ARGV[base + 9], unpack(ARGV, base + 10, last))
  redis.call('HINCRBY', k_th, 'n', '1')
  if dedupe ~= nil then redis.call('HSET', k_dd, dedupe, id) end
  -- What `enter` reads of a Queued record.
  local signalled = enter({
    dispatch_id = id, thread_id = t, status = 'Queued', priority = ARGV[base + 4], available_at = ARGV[base + 5],
    created_at = ARGV[base + 8], updated_at = ARGV[base + 9],
  }, nil, true)
  if signalled == false then return { 'ok', 'quiet' } end
  return { 'ok' }
end

-- ---- script body follows ----
