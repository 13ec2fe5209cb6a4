-- The Redis peer's check-and-charge, run with EVALSHA so that it is atomic on the server.
--
-- KEYS[1]: "key:" .. hex(sha256(secret)), a hash with the fields key_id, status, budget,
--          spent (micro-units), rate, per_ms (a token bucket of `rate` requests per `per_ms`
--          milliseconds, burst `rate`), tokens and at_ms (what was left, and when).
-- ARGV[1]: the cost to charge, in micro-units.
-- Returns {1, "valid", key_id} when allowed and charged, {0, code, key_id?} otherwise.
--
-- The clock is the server's (TIME); Redis 7 replicates a script's effects, not the script,
-- so reading the clock is allowed.

local k = redis.call('HMGET', KEYS[1], 'key_id', 'status', 'budget', 'spent', 'rate',
    'per_ms', 'tokens', 'at_ms')
if not k[1] then
    return {0, 'not_found'}
end
if k[2] ~= 'active' then
    return {0, k[2], k[1]}
end
if tonumber(k[4]) >= tonumber(k[3]) then
    return {0, 'budget_exceeded', k[1]}
end

local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local rate = tonumber(k[5])
local elapsed = math.max(now_ms - tonumber(k[8]), 0)
local bucket = math.min(rate, tonumber(k[7]) + elapsed * rate / tonumber(k[6]))
if bucket < 1 then
    return {0, 'rate_limited', k[1]}
end

redis.call('HINCRBY', KEYS[1], 'spent', ARGV[1])
redis.call('HSET', KEYS[1], 'tokens', tostring(bucket - 1), 'at_ms', now_ms)
return {1, 'valid', k[1]}
