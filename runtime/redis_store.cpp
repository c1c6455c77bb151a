#include "runtime/redis_store.hpp"

#include <hiredis/hiredis.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <msgpack.hpp>
#include <mutex>
#include <thread>

namespace brigade::runtime {

result<redis_url> parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  const status bad{errc::invalid_argument,
                   "'" + url + "' is not a Redis URL; use redis://[user:password@]host:port/db"};
  if (url.rfind(scheme, 0) != 0) return bad;
  std::string rest = url.substr(scheme.size());
  redis_url u;
  if (const size_t at = rest.rfind('@'); at != std::string::npos) {
    const std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = cred.find(':');
    if (colon == std::string::npos)
      u.password = cred;
    else {
      u.user = cred.substr(0, colon);
      u.password = cred.substr(colon + 1);
    }
  }
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      char* end = nullptr;
      const long v = std::strtol(db.c_str(), &end, 10);
      if (*end || v < 0 || v > 1024) return bad;
      u.db = static_cast<int>(v);
    }
  }
  if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    char* end = nullptr;
    const long p = std::strtol(rest.c_str() + colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535) return bad;
    u.port = static_cast<int>(p);
    rest = rest.substr(0, colon);
  }
  if (!rest.empty()) u.host = rest;
  return u;
}

namespace {

constexpr int schema_version = 1;

// Every script reads Redis's own clock (TIME), so leases do not depend on the
// clocks of the nodes. Error replies start with a word the client maps to an
// errc: MISSING, EXISTS, SEQ, EPOCH, OWNED, SCHEMA.
#define BRIGADE_LUA_NOW            \
  "local t = redis.call('TIME')\n" \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

// KEYS: meta. ARGV: schema, owner, model, token hash, created, ttl ms, lease ms.
const char* const create_script = BRIGADE_LUA_NOW R"(
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS session already exists') end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'seq', 0, 'epoch', 1, 'owner', ARGV[2], 'lease', now + tonumber(ARGV[7]),
           'model', ARGV[3], 'token', ARGV[4], 'created', ARGV[5], 'snap_seq', 0)
if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
return 'OK')";

// KEYS: meta, turns, snap. ARGV: owner, lease ms, ttl ms, schema.
// Free, expired or already ours (the same node name, restarted): take it
// with epoch + 1. Returns the new epoch.
const char* const acquire_script = BRIGADE_LUA_NOW R"(
local m = redis.call('HMGET', KEYS[1], 'v', 'epoch', 'owner', 'lease')
if not m[1] then return redis.error_reply('MISSING session is not in the store (expired or deleted)') end
if m[1] ~= ARGV[4] then
  return redis.error_reply('SCHEMA stored with schema version \'' .. m[1] .. '\', this node reads version ' .. ARGV[4]) end
local epoch = tonumber(m[2])
local lease = tonumber(m[4] or '0')
if not epoch or not lease then return redis.error_reply('SCHEMA the session\'s meta record is damaged') end
if m[3] and m[3] ~= '' and m[3] ~= ARGV[1] and lease > now then
  return redis.error_reply('OWNED owned by node ' .. m[3] .. ' for ' .. (lease - now) .. ' ms more') end
redis.call('HSET', KEYS[1], 'epoch', epoch + 1, 'owner', ARGV[1], 'lease', now + tonumber(ARGV[2]))
if tonumber(ARGV[3]) > 0 then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return epoch + 1)";

// KEYS: meta, turns, snap. ARGV: epoch, lease ms, ttl ms.
const char* const renew_script = BRIGADE_LUA_NOW R"(
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
const char* const release_script = R"(
if tonumber(redis.call('HGET', KEYS[1], 'epoch') or '-1') == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'owner', '', 'lease', 0)
end
return 'OK')";

// KEYS: meta, turns, snap. ARGV: epoch, seq, record, ttl ms, lease ms.
// Returns {length of the turn list, snap_seq} so the client can decide to
// compact (off the commit path).
const char* const append_script = BRIGADE_LUA_NOW R"(
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
const char* const compact_script = R"(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local s = redis.call('HGET', KEYS[1], 'snap_seq') or '0'
if tonumber(s) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[2], tonumber(ARGV[3]), -1)
redis.call('HSET', KEYS[1], 'snap_seq', ARGV[2])
if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
return 1)";

std::string key(const std::string& id, const char* part) { return "brigade:{" + id + "}:" + part; }

using reply_ptr = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;
using command = std::vector<std::string>;

struct request {
  std::vector<command> commands;  // pipelined together
  // Gets one reply per command (nullptr replies mean the connection failed).
  std::function<void(std::vector<redisReply*>&, const std::string& conn_error)> done;
};

// --- records ---------------------------------------------------------------

void pack_turn(msgpack::packer<msgpack::sbuffer>& pk, const turn_record& t) {
  pk.pack_array(7);
  pk.pack(schema_version);
  pk.pack(t.seq);
  pk.pack(t.user);
  pk.pack(t.assistant);
  pk.pack(t.prompt_tokens);
  pk.pack(t.generated_tokens);
  pk.pack(t.committed_at_ms);
}

/// Throws on anything but a version-1 turn record (msgpack-c throws too).
turn_record unpack_turn(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 7 || o.via.array.ptr[0].as<int>() != schema_version)
    throw std::runtime_error("not a version-" + std::to_string(schema_version) + " turn record");
  turn_record t;
  t.seq = o.via.array.ptr[1].as<uint64_t>();
  t.user = o.via.array.ptr[2].as<std::string>();
  t.assistant = o.via.array.ptr[3].as<std::string>();
  t.prompt_tokens = o.via.array.ptr[4].as<uint32_t>();
  t.generated_tokens = o.via.array.ptr[5].as<uint32_t>();
  t.committed_at_ms = o.via.array.ptr[6].as<int64_t>();
  return t;
}

/// Snapshot: [schema, last seq, [turn record...]].
std::string pack_snapshot(const std::vector<turn_record>& turns) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(3);
  pk.pack(schema_version);
  pk.pack(turns.empty() ? uint64_t{0} : turns.back().seq);
  pk.pack_array(static_cast<uint32_t>(turns.size()));
  for (const auto& t : turns) pack_turn(pk, t);
  return {buf.data(), buf.size()};
}

/// Appends the turns of the snapshot and then of the list to `out`, checking
/// that seqs run 1, 2, 3...; an error names what is damaged.
status unpack_history(const std::string& id, const redisReply* snap, const redisReply* list,
                      std::vector<turn_record>& out) {
  auto expect_next = [&](const turn_record& t, const std::string& where) -> status {
    if (t.seq != out.size() + 1)
      return {errc::malformed, "session " + id + ": " + where + " has seq " + std::to_string(t.seq) + ", expected " +
                                   std::to_string(out.size() + 1)};
    return {};
  };
  if (snap && snap->type == REDIS_REPLY_STRING) {
    try {
      msgpack::object_handle h = msgpack::unpack(snap->str, snap->len);
      const msgpack::object& o = h.get();
      if (o.type != msgpack::type::ARRAY || o.via.array.size != 3 || o.via.array.ptr[0].as<int>() != schema_version ||
          o.via.array.ptr[2].type != msgpack::type::ARRAY)
        throw std::runtime_error("not a version-" + std::to_string(schema_version) + " snapshot");
      const auto& turns = o.via.array.ptr[2].via.array;
      for (uint32_t i = 0; i < turns.size; ++i) {
        turn_record t = unpack_turn(turns.ptr[i]);
        if (status s = expect_next(t, "snapshot turn " + std::to_string(i + 1)); !s) return s;
        out.push_back(std::move(t));
      }
      if (o.via.array.ptr[1].as<uint64_t>() != out.size()) throw std::runtime_error("its turn count is wrong");
    } catch (const std::exception& ex) {
      return {errc::malformed, "session " + id + ": the stored snapshot cannot be read (" + ex.what() +
                                   "); the session's data is damaged"};
    }
  }
  const size_t base = out.size();
  for (size_t i = 0; list && i < list->elements; ++i) {
    const redisReply* e = list->element[i];
    turn_record t;
    try {  // msgpack-c throws on malformed input: convert here, nothing escapes
      msgpack::object_handle h = msgpack::unpack(e->str, e->len);
      t = unpack_turn(h.get());
    } catch (const std::exception& ex) {
      return {errc::malformed, "session " + id + ": stored turn " + std::to_string(base + i + 1) + " cannot be read (" +
                                   ex.what() + "); the session's data is damaged"};
    }
    if (status s = expect_next(t, "stored turn " + std::to_string(base + i + 1)); !s) return s;
    out.push_back(std::move(t));
  }
  return {};
}

// --- one connection on a thread of its own -----------------------------------

class connection {
 public:
  explicit connection(redis_url url) : url_(std::move(url)), thread_([this] { run(); }) {}

  ~connection() { close(); }

  /// Runs what is queued, including what its callbacks queue (when
  /// connected), then stops; later requests fail at once.
  void close() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    if (ctx_) redisFree(ctx_);
    ctx_ = nullptr;
  }

  std::string where() const { return "redis " + url_.host + ":" + std::to_string(url_.port); }

  void submit(std::vector<command> commands, decltype(request::done) done) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!closed_) {
        queue_.push_back({std::move(commands), std::move(done)});
        cv_.notify_one();
        return;
      }
    }
    std::vector<redisReply*> none(commands.size(), nullptr);
    done(none, "the store is shutting down");
  }

 private:
  /// Connects (with AUTH and SELECT); "" on success, else the reason.
  std::string connect() {
    if (ctx_) {
      redisFree(ctx_);
      ctx_ = nullptr;
    }
    timeval tv{2, 0};
    ctx_ = redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
    if (!ctx_ || ctx_->err) {
      std::string why = ctx_ ? ctx_->errstr : "cannot allocate a connection";
      if (ctx_) redisFree(ctx_);
      ctx_ = nullptr;
      return why;
    }
    redisSetTimeout(ctx_, tv);
    auto simple = [&](command cmd) -> std::string {
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (auto& a : cmd) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      reply_ptr rep(
          static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data())),
          freeReplyObject);
      if (!rep) return ctx_->errstr;
      if (rep->type == REDIS_REPLY_ERROR) return std::string(rep->str, rep->len);
      return "";
    };
    std::string e;
    if (!url_.password.empty()) {
      e = url_.user.empty() ? simple({"AUTH", url_.password}) : simple({"AUTH", url_.user, url_.password});
      if (!e.empty()) e = "authentication failed (" + e + ")";
    }
    if (e.empty() && url_.db != 0) e = simple({"SELECT", std::to_string(url_.db)});
    if (!e.empty()) {
      redisFree(ctx_);
      ctx_ = nullptr;
    }
    return e;
  }

  static void fail(std::deque<request>& batch, const std::string& why) {
    for (auto& r : batch) {
      std::vector<redisReply*> none(r.commands.size(), nullptr);
      r.done(none, why);
    }
  }

  void run() {
    auto backoff = std::chrono::milliseconds(100);
    std::chrono::steady_clock::time_point retry_at{};
    for (;;) {
      std::deque<request> batch;
      bool stopping = false;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        stopping = stop_;
        batch.swap(queue_);
        if (stopping && batch.empty()) {
          closed_ = true;
          return;
        }
      }
      std::string conn_error;
      if (!ctx_) {
        if (stopping) {
          fail(batch, "the store is shutting down");
          continue;  // callbacks may have queued more: fail those too, then stop
        }
        if (std::chrono::steady_clock::now() < retry_at) {
          conn_error = last_error_ + " (reconnecting)";
        } else {
          conn_error = connect();
          if (conn_error.empty()) {
            backoff = std::chrono::milliseconds(100);
          } else {
            last_error_ = conn_error;
            retry_at = std::chrono::steady_clock::now() + backoff;
            backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
          }
        }
      }
      if (!ctx_) {
        fail(batch, conn_error);
        continue;
      }
      // Pipeline: every command of every request, then every reply in order.
      for (auto& r : batch)
        for (auto& cmd : r.commands) {
          std::vector<const char*> argv;
          std::vector<size_t> lens;
          for (auto& a : cmd) {
            argv.push_back(a.data());
            lens.push_back(a.size());
          }
          redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data());
        }
      bool broken = false;
      for (auto& r : batch) {
        std::vector<reply_ptr> owned;
        std::vector<redisReply*> replies;
        for (size_t k = 0; k < r.commands.size(); ++k) {
          void* rep = nullptr;
          if (!broken && redisGetReply(ctx_, &rep) != REDIS_OK) {
            broken = true;
            last_error_ = ctx_->errstr[0] ? ctx_->errstr : "connection lost";
          }
          owned.emplace_back(broken ? nullptr : static_cast<redisReply*>(rep), freeReplyObject);
          replies.push_back(owned.back().get());
        }
        r.done(replies, last_error_);
      }
      if (broken) {  // the next request reconnects
        redisFree(ctx_);
        ctx_ = nullptr;
        retry_at = {};
      }
    }
  }

  redis_url url_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<request> queue_;
  bool stop_ = false;
  bool closed_ = false;          // the thread has ended
  redisContext* ctx_ = nullptr;  // I/O thread only
  std::string last_error_;
  std::thread thread_;
};

// --- the store ---------------------------------------------------------------

class redis_store final : public session_store {
 public:
  redis_store(redis_url url, const store_options& opt)
      : url_(url),
        ttl_ms_(opt.retention.count() / 1000),
        lease_ms_(std::max<int64_t>(1, opt.lease.count() / 1000)),
        compact_min_(opt.compact_min),
        background_(std::make_unique<connection>(url)),
        commits_(std::make_unique<connection>(url)) {}

  ~redis_store() override {
    commits_->close();  // finishes queued writes (leases given back at shutdown), which may queue compactions
    background_->close();
  }

  std::string describe() const override {
    return "redis://" + url_.host + ":" + std::to_string(url_.port) + "/" + std::to_string(url_.db);
  }

  void create(const session_meta& m, done_fn done) override {
    commits_->submit({{"EVAL", create_script, "1", key(m.id, "meta"), std::to_string(schema_version), m.owner, m.model,
                       m.token_hash, std::to_string(m.created_ms), std::to_string(ttl_ms_), std::to_string(lease_ms_)}},
                     [this, done, id = m.id](std::vector<redisReply*>& r, const std::string& err) {
                       done(status_of(r[0], err, id));
                     });
  }

  void acquire(const std::string& id, const std::string& owner, load_fn done) override {
    std::vector<command> cmds{{"EVAL", acquire_script, "3", key(id, "meta"), key(id, "turns"), key(id, "snap"), owner,
                               std::to_string(lease_ms_), std::to_string(ttl_ms_), std::to_string(schema_version)}};
    for (auto& c : read_commands(id)) cmds.push_back(std::move(c));
    commits_->submit(std::move(cmds), [this, done, id, owner](std::vector<redisReply*>& r, const std::string& err) {
      if (status s = status_of(r[0], err, id); !s) return done(s);
      // The script and the read are one round trip but two steps: another
      // acquire (an old process under the same node name) may fall between.
      // The script's epoch is ours; a newer one read back means we lost.
      const uint64_t epoch = r[0]->type == REDIS_REPLY_INTEGER ? static_cast<uint64_t>(r[0]->integer) : 0;
      result<session_snapshot> snap = decode(r.back(), err, id);
      if (!snap) {  // unreadable data: give the lease back rather than hold a session nobody can serve
        release(id, epoch, [](status) {});
        return done(snap);
      }
      if (snap->meta.epoch != epoch)
        return done(status{errc::conflict, "session " + id + ": taken by another process of node " + owner +
                                               " while restoring (epoch " + std::to_string(epoch) +
                                               " is not the current " + std::to_string(snap->meta.epoch) + ")"});
      done(std::move(snap));
    });
  }

  void renew(const std::string& id, uint64_t epoch, done_fn done) override {
    commits_->submit(
        {{"EVAL", renew_script, "3", key(id, "meta"), key(id, "turns"), key(id, "snap"), std::to_string(epoch),
          std::to_string(lease_ms_), std::to_string(ttl_ms_)}},
        [this, done, id](std::vector<redisReply*>& r, const std::string& err) { done(status_of(r[0], err, id)); });
  }

  void release(const std::string& id, uint64_t epoch, done_fn done) override {
    commits_->submit(
        {{"EVAL", release_script, "1", key(id, "meta"), std::to_string(epoch)}},
        [this, done, id](std::vector<redisReply*>& r, const std::string& err) { done(status_of(r[0], err, id)); });
  }

  void append(const std::string& id, uint64_t epoch, const turn_record& t, done_fn done) override {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pack_turn(pk, t);
    commits_->submit({{"EVAL", append_script, "3", key(id, "meta"), key(id, "turns"), key(id, "snap"),
                       std::to_string(epoch), std::to_string(t.seq), std::string(buf.data(), buf.size()),
                       std::to_string(ttl_ms_), std::to_string(lease_ms_)}},
                     [this, done, id](std::vector<redisReply*>& r, const std::string& err) {
                       status s = status_of(r[0], err, id);
                       done(s);  // acknowledged first: compaction is off the commit path
                       if (s && compact_min_ > 0 && r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements == 2) {
                         const long long listed = r[0]->element[0]->integer;
                         const long long snapped = r[0]->element[1]->integer;
                         if (listed >= static_cast<long long>(compact_min_) && listed >= snapped) compact_if_idle(id);
                       }
                     });
  }

  void load(const std::string& id, load_fn done) override {
    commits_->submit(read_commands(id), [this, done, id](std::vector<redisReply*>& r, const std::string& err) {
      done(decode(r.back(), err, id));
    });
  }

  void compact(const std::string& id, done_fn done) override {
    {
      std::lock_guard<std::mutex> g(mu_);
      auto [it, fresh] = compacting_.try_emplace(id);
      if (!fresh) {  // one run at a time per session; another starts when it ends, for these callers
        it->second.push_back(std::move(done));
        return;
      }
    }
    compact_now(id, std::move(done));
  }

  void remove(const std::string& id, done_fn done) override {
    commits_->submit(
        {{"DEL", key(id, "meta"), key(id, "turns"), key(id, "snap")}},
        [this, done, id](std::vector<redisReply*>& r, const std::string& err) { done(status_of(r[0], err, id)); });
  }

 private:
  /// After an append: starts a compaction unless one is running for this
  /// session (that one folds the list; queueing another would fold it again
  /// and make compaction cost more than O(1) per turn).
  void compact_if_idle(const std::string& id) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!compacting_.try_emplace(id).second) return;
    }
    compact_now(id, [](status) {});
  }

  void compact_now(const std::string& id, done_fn done) {
    auto finish = [this, id, done](status s) {
      std::vector<done_fn> waiting;
      {
        std::lock_guard<std::mutex> g(mu_);
        auto it = compacting_.find(id);
        waiting.swap(it->second);
        if (waiting.empty()) compacting_.erase(it);
      }
      done(std::move(s));
      if (!waiting.empty())
        compact_now(id, [waiting](status s2) {
          for (const auto& w : waiting) w(s2);
        });
    };
    background_->submit(read_commands(id), [this, id, finish](std::vector<redisReply*>& r, const std::string& err) {
      const redisReply* tx = r.back();
      if (!tx) return finish({errc::io, background_->where() + ": " + err});
      if (tx->type != REDIS_REPLY_ARRAY || tx->elements != 3) return finish(status_of(tx, err, id));
      const redisReply* meta = tx->element[0];
      if (meta->type != REDIS_REPLY_ARRAY || meta->elements == 0)
        return finish({errc::not_found, "session " + id + " is not in the store"});
      std::string snap_seq = "0";  // sessions written before compaction existed have no field
      for (size_t i = 0; i + 1 < meta->elements; i += 2)
        if (std::string(meta->element[i]->str, meta->element[i]->len) == "snap_seq")
          snap_seq.assign(meta->element[i + 1]->str, meta->element[i + 1]->len);
      const size_t folded = tx->element[2]->elements;
      if (folded == 0) return finish({});
      std::vector<turn_record> turns;
      if (status s = unpack_history(id, tx->element[1], tx->element[2], turns); !s) return finish(s);
      background_->submit(
          {{"EVAL", compact_script, "3", key(id, "meta"), key(id, "turns"), key(id, "snap"), snap_seq,
            std::to_string(turns.size()), std::to_string(folded), pack_snapshot(turns), std::to_string(ttl_ms_)}},
          [this, id, finish](std::vector<redisReply*>& r2, const std::string& err2) {
            finish(status_of(r2[0], err2, id));
          });
    });
  }

  /// Meta, snapshot and turn list read together (MULTI/EXEC: a compaction
  /// cannot fall between them). The EXEC reply comes last.
  static std::vector<command> read_commands(const std::string& id) {
    return {{"MULTI"},
            {"HGETALL", key(id, "meta")},
            {"GET", key(id, "snap")},
            {"LRANGE", key(id, "turns"), "0", "-1"},
            {"EXEC"}};
  }

  std::string where() const { return commits_->where(); }

  status status_of(const redisReply* r, const std::string& conn_error, const std::string& id) const {
    if (!r) return {errc::io, where() + ": " + conn_error};
    if (r->type != REDIS_REPLY_ERROR) return {};
    const std::string msg(r->str, r->len);
    const std::string word = msg.substr(0, msg.find(' '));
    const std::string rest = msg.find(' ') == std::string::npos ? msg : msg.substr(msg.find(' ') + 1);
    if (word == "MISSING") return {errc::not_found, "session " + id + ": " + rest};
    if (word == "EPOCH" || word == "OWNED") return {errc::conflict, "session " + id + ": " + rest};
    if (word == "SEQ" || word == "EXISTS") return {errc::invalid_argument, "session " + id + ": " + rest};
    if (word == "SCHEMA") return {errc::malformed, "session " + id + ": " + rest};
    return {errc::io, where() + ": " + msg};
  }

  result<session_snapshot> decode(const redisReply* tx, const std::string& conn_error, const std::string& id) const {
    if (!tx) return status{errc::io, where() + ": " + conn_error};
    if (tx->type != REDIS_REPLY_ARRAY || tx->elements != 3) {
      if (status s = status_of(tx, conn_error, id); !s) return s;
      return status{errc::io, where() + ": unexpected reply to a read"};
    }
    for (size_t i = 0; i < 3; ++i)
      if (tx->element[i]->type == REDIS_REPLY_ERROR)
        return status{errc::io, where() + ": " + std::string(tx->element[i]->str, tx->element[i]->len)};
    const redisReply* meta = tx->element[0];
    if (meta->type != REDIS_REPLY_ARRAY || meta->elements == 0)
      return status{errc::not_found, "session " + id + " is not in the store"};
    session_snapshot snap;
    snap.meta.id = id;
    std::string version;
    for (size_t i = 0; i + 1 < meta->elements; i += 2) {
      const std::string f(meta->element[i]->str, meta->element[i]->len);
      const std::string v(meta->element[i + 1]->str, meta->element[i + 1]->len);
      if (f == "v")
        version = v;
      else if (f == "epoch")
        snap.meta.epoch = std::strtoull(v.c_str(), nullptr, 10);
      else if (f == "owner")
        snap.meta.owner = v;
      else if (f == "model")
        snap.meta.model = v;
      else if (f == "token")
        snap.meta.token_hash = v;
      else if (f == "created")
        snap.meta.created_ms = std::strtoll(v.c_str(), nullptr, 10);
    }
    if (version != std::to_string(schema_version))
      return status{errc::malformed, "session " + id + ": stored with schema version '" + version +
                                         "', this node reads version " + std::to_string(schema_version)};
    if (status s = unpack_history(id, tx->element[1], tx->element[2], snap.turns); !s) return s;
    return snap;
  }

  redis_url url_;
  int64_t ttl_ms_;
  int64_t lease_ms_;
  uint32_t compact_min_;
  std::mutex mu_;
  std::map<std::string, std::vector<done_fn>> compacting_;  // sessions being compacted -> callers of the next run
  // Two connections: compaction (large reads and writes) never queues in
  // front of a commit on the client side.
  std::unique_ptr<connection> background_;
  std::unique_ptr<connection> commits_;
};

}  // namespace

std::unique_ptr<session_store> make_redis_store(const redis_url& url, const store_options& opt) {
  return std::make_unique<redis_store>(url, opt);
}

}  // namespace brigade::runtime
