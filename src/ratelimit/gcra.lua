-- One rate-limit decision (GCRA, the generic cell rate algorithm), atomic in Redis: every
-- instance on this Redis shares the client's allowance.
--
-- KEYS[1]  the client's key; its value is the client's theoretical arrival time (TAT), in
--          microseconds of the Redis server's clock, so the instances' clocks do not matter.
-- ARGV[1]  the emission interval in microseconds (one request's worth of allowance).
-- ARGV[2]  the burst: how many requests may arrive at once.
--
-- Returns {1, 0} when the request may go on (and records it), {0, microseconds to wait} when
-- it may not (and records nothing). The key expires when the allowance is full again, which
-- is when a missing key means the same: Redis forgets idle clients by itself.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
    tat = now
end
local next_tat = tat + interval
local allowed_at = next_tat - interval * burst
if now < allowed_at then
    return {0, allowed_at - now}
end
-- Integers formatted by hand: Lua would send a number this large in exponent notation.
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
    'PX', string.format('%.0f', math.ceil((next_tat - now) / 1000)))
return {1, 0}
