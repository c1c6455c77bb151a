#include "runtime/membership.hpp"

#include <msgpack.hpp>

#include <sstream>

#include "runtime/redis_connection.hpp"

namespace brigade::runtime {

namespace {

using redis::command;

#define BRIGADE_LUA_NOW            \
  "local t = redis.call('TIME')\n" \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

// Member records are msgpack maps (cmsgpack in the scripts, msgpack-c here).
// A record is live while its state is not 'dead' and its heartbeat is
// younger than the expiry.
#define BRIGADE_LUA_LIVE \
  "local function live(r, expiry) return r.state ~= 'dead' and now - r.hb <= expiry end\n"

// KEYS: name, nodes. ARGV: cluster, record, expiry ms, replaced incarnation.
const char* const join_script = BRIGADE_LUA_NOW BRIGADE_LUA_LIVE R"(
local bound = redis.call('GET', KEYS[1])
if bound and bound ~= ARGV[1] then return redis.error_reply('CLUSTER ' .. bound) end
local me = cmsgpack.unpack(ARGV[2])
local expiry = tonumber(ARGV[3])
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local r = cmsgpack.unpack(all[i + 1])
  if live(r, expiry) then
    if r.name == me.name and r.inc ~= ARGV[4] then return redis.error_reply('LIVE ' .. r.inc .. ' ' .. r.addr) end
    if r.name ~= me.name and r.model ~= me.model then
      return redis.error_reply('MODEL ' .. r.name .. ' ' .. r.model) end
  end
end
if not bound then redis.call('SET', KEYS[1], ARGV[1]) end
me.hb = now
me.joined = now
me.state = 'joining'
redis.call('HSET', KEYS[2], me.name, cmsgpack.pack(me))
return now)";

// KEYS: nodes. ARGV: name, incarnation, state, load (msgpack), expiry ms,
// forget ms. Returns {now, record, record, ...}.
const char* const heartbeat_script = BRIGADE_LUA_NOW BRIGADE_LUA_LIVE R"(
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return redis.error_reply('DEAD its entry is gone from the table') end
local me = cmsgpack.unpack(v)
if me.inc ~= ARGV[2] then
  return redis.error_reply('DEAD another process of this node (incarnation ' .. me.inc .. ') took its place') end
if me.state == 'dead' then return redis.error_reply('DEAD ' .. (me.cause or 'no cause recorded')) end
local expiry, forget = tonumber(ARGV[5]), tonumber(ARGV[6])
-- A caller whose own last heartbeat is older than the expiry (Redis was out
-- of its reach, or it stood still) cannot tell a silent member from one that
-- could not reach Redis either: it expires nobody until it has been back for
-- the expiry itself, so that the others have as long to come back.
local fresh = live(me, expiry)
if not fresh then me.since = now end
local judge = fresh and now - (me.since or 0) >= expiry
me.hb = now
me.state = ARGV[3]
me.load = cmsgpack.unpack(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(me))
local out = {now}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local r = cmsgpack.unpack(all[i + 1])
  if judge and r.state ~= 'dead' and not live(r, expiry) then
    r.state = 'dead'
    r.died = now
    r.cause = 'no heartbeat for ' .. (now - r.hb) .. ' ms'
    local packed = cmsgpack.pack(r)
    redis.call('HSET', KEYS[1], all[i], packed)
    out[#out + 1] = packed
  elseif r.state == 'dead' and now - (r.died or 0) > forget then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i + 1]
  end
end
return out)";

// KEYS: nodes, votes of the suspect's incarnation (a sorted set: member ->
// when it voted). ARGV: reporter name, reporter incarnation, suspect name,
// suspect incarnation, expiry ms, vote ttl ms. A vote counts for `vote ttl`
// after it was cast and while its voter is a live member. Returns 'DEAD'
// (declared now or before), 'GONE' (that incarnation is no longer in the
// table) or 'VOTES n/needed'.
const char* const report_script = BRIGADE_LUA_NOW BRIGADE_LUA_LIVE R"(
local rv = redis.call('HGET', KEYS[1], ARGV[1])
local rep = rv and cmsgpack.unpack(rv)
if not rep or rep.inc ~= ARGV[2] or rep.state == 'dead' then
  return redis.error_reply('DEAD its own entry is dead or another process took its place') end
local sv = redis.call('HGET', KEYS[1], ARGV[3])
local sus = sv and cmsgpack.unpack(sv)
if not sus or sus.inc ~= ARGV[4] then return 'GONE' end
if sus.state == 'dead' then return 'WAS_DEAD' end
local expiry, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
local active = 0
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
for i = 1, #all, 2 do
  local r = cmsgpack.unpack(all[i + 1])
  if live(r, expiry) then alive[r.name] = true end
  if r.state == 'active' and live(r, expiry) then active = active + 1 end
end
local needed = 1
if active > 2 then needed = math.floor(active / 2) + 1 end
local voters = {}
for _, v in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if alive[v] and v ~= ARGV[3] then voters[#voters + 1] = v end
end
if #voters < needed then return 'VOTES ' .. #voters .. '/' .. needed end
sus.state = 'dead'
sus.died = now
table.sort(voters)
sus.cause = 'reported by ' .. table.concat(voters, ', ')
redis.call('HSET', KEYS[1], ARGV[3], cmsgpack.pack(sus))
redis.call('DEL', KEYS[2])
return 'DEAD')";

// KEYS: votes of an incarnation. ARGV: reporter name. The reporter hears the
// suspect again: its vote is withdrawn.
const char* const withdraw_script = R"(
redis.call('ZREM', KEYS[1], ARGV[1])
return 'OK')";

// KEYS: nodes. ARGV: name, incarnation.
const char* const leave_script = R"(
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and cmsgpack.unpack(v).inc == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 'OK')";

// KEYS: nodes. Returns {now, record, ...}.
const char* const table_script = BRIGADE_LUA_NOW R"(
local out = {now}
for i, v in ipairs(redis.call('HVALS', KEYS[1])) do out[#out + 1] = v end
return out)";

std::string cluster_key(const char* part) { return std::string("brigade:{cluster}:") + part; }

std::string pack_member(const member& m) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(7);
  pk.pack("name"), pk.pack(m.name);
  pk.pack("addr"), pk.pack(m.address);
  pk.pack("inc"), pk.pack(m.incarnation);
  pk.pack("state"), pk.pack(m.state);
  pk.pack("model"), pk.pack(m.model);
  pk.pack("ver"), pk.pack(m.version);
  pk.pack("cap"), pk.pack(m.capacity);
  return {buf.data(), buf.size()};
}

std::string pack_load(const std::map<std::string, double>& load) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, load);
  return {buf.data(), buf.size()};
}

double number(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::POSITIVE_INTEGER: return static_cast<double>(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return static_cast<double>(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    default: throw std::runtime_error("a member record field is not a number");
  }
}

std::string text(const msgpack::object& o) {
  if (o.type != msgpack::type::STR) throw std::runtime_error("a member record field is not a string");
  return {o.via.str.ptr, o.via.str.size};
}

/// A record as the scripts wrote it (cmsgpack packs an empty table as an
/// empty array, so `load` may be one). Throws on malformed data.
member unpack_member(const char* data, size_t n) {
  msgpack::object_handle h = msgpack::unpack(data, n);
  const msgpack::object& o = h.get();
  if (o.type != msgpack::type::MAP) throw std::runtime_error("a member record is not a map");
  member m;
  for (const auto& kv : o.via.map) {
    const std::string k = text(kv.key);
    const msgpack::object& v = kv.val;
    if (k == "name") m.name = text(v);
    else if (k == "addr") m.address = text(v);
    else if (k == "inc") m.incarnation = text(v);
    else if (k == "state") m.state = text(v);
    else if (k == "model") m.model = text(v);
    else if (k == "cause") m.cause = text(v);
    else if (k == "ver") m.version = static_cast<uint32_t>(number(v));
    else if (k == "cap") m.capacity = number(v);
    else if (k == "hb") m.heartbeat_ms = static_cast<int64_t>(number(v));
    else if (k == "joined") m.joined_ms = static_cast<int64_t>(number(v));
    else if (k == "died") m.died_ms = static_cast<int64_t>(number(v));
    else if (k == "load" && v.type == msgpack::type::MAP)
      for (const auto& f : v.via.map) m.load[text(f.key)] = number(f.val);
  }
  return m;
}

/// {now, record, ...} into a table; a damaged record is an error naming it.
store_result<member_table> unpack_table(const redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 || r->element[0]->type != REDIS_REPLY_INTEGER)
    return store_status{store_errc::malformed, "the membership table reply has an unexpected shape"};
  member_table t;
  t.now_ms = r->element[0]->integer;
  for (size_t i = 1; i < r->elements; ++i) {
    try {
      t.members.push_back(unpack_member(r->element[i]->str, r->element[i]->len));
    } catch (const std::exception& e) {
      return store_status{store_errc::malformed, std::string("a member record in brigade:{cluster}:nodes is damaged (") +
                                                     e.what() + "); delete that field"};
    }
  }
  return t;
}

/// The error word of a script's reply and the rest of its text.
std::pair<std::string, std::string> error_words(const redisReply* r) {
  const std::string msg(r->str, r->len);
  const auto sp = msg.find(' ');
  return {msg.substr(0, sp), sp == std::string::npos ? "" : msg.substr(sp + 1)};
}

}  // namespace

const member* member_table::find(const std::string& name) const {
  for (const member& m : members)
    if (m.name == name) return &m;
  return nullptr;
}

struct membership::impl {
  explicit impl(const redis_url& url) : conn(url) {}
  redis::connection conn;

  /// The status of a reply: io for a lost connection, conflict for DEAD.
  store_status status_of(const redisReply* r, const std::string& conn_error) const {
    if (!r) return {store_errc::io, conn.where() + ": " + conn_error};
    if (r->type != REDIS_REPLY_ERROR) return {};
    auto [word, rest] = error_words(r);
    if (word == "DEAD") return {store_errc::conflict, "this node was declared dead: " + rest};
    return {store_errc::io, conn.where() + ": " + std::string(r->str, r->len)};
  }
};

membership::membership(const redis_url& url, membership_options opt)
    : opt_(std::move(opt)), p_(std::make_unique<impl>(url)) {}

membership::~membership() { p_->conn.close(); }

void membership::join(const member& me, const std::string& replaces, join_fn done) {
  p_->conn.submit(
      {{"EVAL", join_script, "2", cluster_key("name"), cluster_key("nodes"), opt_.cluster, pack_member(me),
        std::to_string(opt_.expiry.count()), replaces}},
      [this, done, me](std::vector<redisReply*>& r, const std::string& err) {
        const redisReply* x = r[0];
        if (!x || x->type != REDIS_REPLY_ERROR) return done(p_->status_of(x, err), {});
        auto [word, rest] = error_words(x);
        std::istringstream in(rest);
        member other;
        if (word == "CLUSTER")
          return done({store_errc::invalid_argument,
                       "this Redis database belongs to cluster '" + rest + "', not '" + opt_.cluster +
                           "'; use --cluster " + rest + ", another database, or delete the key "
                           "brigade:{cluster}:name once that cluster is gone"},
                      {});
        if (word == "MODEL") {
          in >> other.name;
          std::getline(in >> std::ws, other.model);
          return done({store_errc::invalid_argument,
                       "cluster '" + opt_.cluster + "' serves model " + other.model + " (node " + other.name +
                           ") but this node serves " + me.model +
                           "; one cluster serves one model: run this one as another cluster in another Redis "
                           "database"},
                      other);
        }
        if (word == "LIVE") {
          in >> other.incarnation >> other.address;
          other.name = me.name;
          return done({store_errc::conflict, "node name " + me.name + " is in use by a live process at " +
                                                 other.address},
                      other);
        }
        done(p_->status_of(x, err), {});
      });
}

void membership::heartbeat(const member& me, table_fn done) {
  p_->conn.submit({{"EVAL", heartbeat_script, "1", cluster_key("nodes"), me.name, me.incarnation, me.state,
                    pack_load(me.load), std::to_string(opt_.expiry.count()), std::to_string(opt_.forget.count())}},
                  [this, done](std::vector<redisReply*>& r, const std::string& err) {
                    if (store_status s = p_->status_of(r[0], err); !s) return done(s);
                    done(unpack_table(r[0]));
                  });
}

void membership::report(const member& me, const std::string& suspect, const std::string& suspect_incarnation,
                        report_fn done) {
  p_->conn.submit({{"EVAL", report_script, "2", cluster_key("nodes"), cluster_key("votes:") + suspect_incarnation,
                    me.name, me.incarnation, suspect, suspect_incarnation, std::to_string(opt_.expiry.count()),
                    std::to_string(opt_.vote_ttl.count())}},
                  [this, done](std::vector<redisReply*>& r, const std::string& err) {
                    if (store_status s = p_->status_of(r[0], err); !s) return done(s);
                    const redisReply* x = r[0];
                    const bool text = x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS;
                    const std::string word = text ? std::string(x->str, x->len) : "";
                    done(word == "DEAD" ? verdict::declared : word == "WAS_DEAD" ? verdict::was_dead : verdict::pending);
                  });
}

void membership::withdraw(const member& me, const std::string& suspect_incarnation, done_fn done) {
  p_->conn.submit({{"EVAL", withdraw_script, "1", cluster_key("votes:") + suspect_incarnation, me.name}},
                  [this, done](std::vector<redisReply*>& r, const std::string& err) {
                    done(p_->status_of(r[0], err));
                  });
}

void membership::leave(const member& me, done_fn done) {
  p_->conn.submit({{"EVAL", leave_script, "1", cluster_key("nodes"), me.name, me.incarnation}},
                  [this, done](std::vector<redisReply*>& r, const std::string& err) {
                    done(p_->status_of(r[0], err));
                  });
}

void membership::table(table_fn done) {
  p_->conn.submit({{"EVAL", table_script, "1", cluster_key("nodes")}},
                  [this, done](std::vector<redisReply*>& r, const std::string& err) {
                    if (store_status s = p_->status_of(r[0], err); !s) return done(s);
                    done(unpack_table(r[0]));
                  });
}

}  // namespace brigade::runtime
