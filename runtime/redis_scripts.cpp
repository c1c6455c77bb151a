#include "runtime/redis_scripts.hpp"

namespace brigade::runtime::redis {

// Every script reads Redis's own clock (TIME), so leases do not depend on the
// clocks of the nodes. Error replies start with a word the client maps to an
// errc: MISSING, EXISTS, SEQ, EPOCH, OWNED, SCHEMA.
#define BRIGADE_LUA_NOW            \
  "local t = redis.call('TIME')\n" \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

// KEYS: meta. ARGV: schema, owner, model, token hash, created, ttl ms, lease
// ms, owner incarnation, system prompt ('' for none: no `sys` field).
extern const char* const create_script = BRIGADE_LUA_NOW R"(
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS session already exists') end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'seq', 0, 'epoch', 1, 'owner', ARGV[2], 'lease', now + tonumber(ARGV[7]),
           'model', ARGV[3], 'token', ARGV[4], 'created', ARGV[5], 'snap_seq', 0, 'inc', ARGV[8])
if ARGV[9] and ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'sys', ARGV[9]) end
if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
return 'OK')";

// KEYS: meta, turns, snap. ARGV: owner, lease ms, ttl ms, schema, owner
// incarnation, then the incarnations the cluster declared dead.
// Free, expired, already ours (the same node name, restarted) or held by a
// dead incarnation (failover): take it with epoch + 1. A meta of schema 1
// (no incarnation) is rewritten as schema 2. Returns {new epoch, 1 if a dead
// incarnation's lease was taken over else 0}; a live lease elsewhere is the
// error "OWNED <ms left> <incarnation or -> <node>".
extern const char* const acquire_script = BRIGADE_LUA_NOW R"(
local m = redis.call('HMGET', KEYS[1], 'v', 'epoch', 'owner', 'lease', 'inc')
if not m[1] then return redis.error_reply('MISSING session is not in the store (expired or deleted)') end
if m[1] ~= ARGV[4] and m[1] ~= '1' and m[1] ~= '3' then
  return redis.error_reply('SCHEMA stored with schema version \'' .. m[1] .. '\', this node reads versions 1 to 3') end
local v = ARGV[4]
if m[1] == '3' then v = '3' end
local epoch = tonumber(m[2])
local lease = tonumber(m[4] or '0')
if not epoch or not lease then return redis.error_reply('SCHEMA the session\'s meta record is damaged') end
local failover = 0
if m[3] and m[3] ~= '' and m[3] ~= ARGV[1] and lease > now then
  local inc = m[5] or ''
  if inc ~= '' then
    for i = 6, #ARGV do if ARGV[i] == inc then failover = 1 end end
  end
  if failover == 0 then
    if inc == '' then inc = '-' end
    return redis.error_reply('OWNED ' .. (lease - now) .. ' ' .. inc .. ' ' .. m[3])
  end
end
redis.call('HSET', KEYS[1], 'v', v, 'epoch', epoch + 1, 'owner', ARGV[1], 'lease', now + tonumber(ARGV[2]),
           'inc', ARGV[5])
if tonumber(ARGV[3]) > 0 then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return {epoch + 1, failover})";

// KEYS: meta. ARGV: the incarnations the cluster declared dead. Returns
// {owner, incarnation, ms left} of a live lease not held by a dead
// incarnation, else {'', '', 0}; reads only.
extern const char* const locate_script = BRIGADE_LUA_NOW R"(
local m = redis.call('HMGET', KEYS[1], 'v', 'owner', 'lease', 'inc')
if not m[1] then return redis.error_reply('MISSING session is not in the store (expired or deleted)') end
local lease = tonumber(m[3] or '0') or 0
local inc = m[4] or ''
if not m[2] or m[2] == '' or lease <= now then return {'', '', 0} end
if inc ~= '' then
  for i = 1, #ARGV do if ARGV[i] == inc then return {'', '', 0} end end
end
return {m[2], inc, lease - now})";

// KEYS: meta, turns, snap. ARGV: epoch, lease ms, ttl ms.
extern const char* const renew_script = BRIGADE_LUA_NOW R"(
local m = redis.call('HMGET', KEYS[1], 'epoch', 'owner')
if not m[1] then return redis.error_reply('MISSING session is not in the store (expired or deleted)') end
if tonumber(ARGV[1]) ~= tonumber(m[1]) then
  return redis.error_reply('EPOCH ownership moved to node ' .. (m[2] or '?') .. ' (epoch ' .. ARGV[1] ..
                           ' is not the current ' .. m[1] .. ')') end
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[2]))
if tonumber(ARGV[3]) > 0 then  -- a live session does not expire under its owner
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return 'OK')";

// KEYS: meta. ARGV: epoch.
extern const char* const release_script = R"(
if tonumber(redis.call('HGET', KEYS[1], 'epoch') or '-1') == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'owner', '', 'lease', 0)
end
return 'OK')";

// KEYS: meta, turns, snap. ARGV: epoch, seq, record, ttl ms, lease ms.
// Returns {length of the turn list, snap_seq} so the client can decide to
// compact (off the commit path).
extern const char* const append_script = BRIGADE_LUA_NOW R"(
local m = redis.call('HMGET', KEYS[1], 'seq', 'epoch', 'owner', 'snap_seq')
if not m[1] then return redis.error_reply('MISSING session is not in the store (expired or deleted)') end
if tonumber(ARGV[1]) ~= tonumber(m[2]) then
  return redis.error_reply('EPOCH ownership moved to node ' .. (m[3] or '?') .. ' (epoch ' .. ARGV[1] ..
                           ' is not the current ' .. m[2] .. ')') end
if tonumber(ARGV[2]) ~= tonumber(m[1]) + 1 then
  return redis.error_reply('SEQ seq ' .. ARGV[2] .. ' is not the next seq ' .. (tonumber(m[1]) + 1)) end
local n = redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'lease', now + tonumber(ARGV[5]))
if tonumber(ARGV[4]) > 0 then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
return {n, tonumber(m[4] or '0')})";

// KEYS: meta, turns, snap. ARGV: snap_seq read, new snap_seq, turns folded,
// snapshot, ttl ms. Compare-and-set on snap_seq: appends only push on the
// right, so the first `folded` turns are the ones read unless another
// compaction ran in between (then this one does nothing).
extern const char* const compact_script = R"(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local s = redis.call('HGET', KEYS[1], 'snap_seq') or '0'
if tonumber(s) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[2], tonumber(ARGV[3]), -1)
redis.call('HSET', KEYS[1], 'snap_seq', ARGV[2])
if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
return 1)";

}  // namespace brigade::runtime::redis
