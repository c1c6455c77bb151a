#include "runtime/redis_store.hpp"

#include <hiredis/hiredis.h>

#include <condition_variable>
#include <deque>
#include <functional>
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
    if (colon == std::string::npos) u.password = cred;
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

// KEYS: meta. ARGV: schema, epoch, owner, model, token hash, created, ttl ms.
const char* const create_script = R"(
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS session already exists') end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'seq', 0, 'epoch', ARGV[2], 'owner', ARGV[3], 'model', ARGV[4],
           'token', ARGV[5], 'created', ARGV[6])
if tonumber(ARGV[7]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[7]) end
return 'OK')";

// KEYS: meta, turns. ARGV: epoch, seq, record, ttl ms.
const char* const append_script = R"(
local m = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
if not m[1] then return redis.error_reply('MISSING session is not in the store (expired or deleted)') end
if tonumber(ARGV[1]) < tonumber(m[2]) then
  return redis.error_reply('EPOCH stale owner epoch ' .. ARGV[1] .. ' < ' .. m[2]) end
if tonumber(ARGV[2]) ~= tonumber(m[1]) + 1 then
  return redis.error_reply('SEQ seq ' .. ARGV[2] .. ' is not the next seq ' .. (tonumber(m[1]) + 1)) end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'epoch', ARGV[1])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return 'OK')";

std::string key(const std::string& id, const char* part) { return "brigade:{" + id + "}:" + part; }

using reply_ptr = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

struct request {
  std::vector<std::vector<std::string>> commands;  // pipelined together
  // Gets one reply per command (nullptr replies mean the connection failed).
  std::function<void(std::vector<redisReply*>&, const std::string& conn_error)> done;
};

class redis_store final : public session_store {
 public:
  redis_store(redis_url url, std::chrono::microseconds retention)
      : url_(std::move(url)), ttl_ms_(retention.count() / 1000), thread_([this] { run(); }) {}

  ~redis_store() override {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    if (ctx_) redisFree(ctx_);
  }

  std::string describe() const override {
    return "redis://" + url_.host + ":" + std::to_string(url_.port) + "/" + std::to_string(url_.db);
  }

  void create(const session_meta& m, done_fn done) override {
    submit({{{"EVAL", create_script, "1", key(m.id, "meta"), std::to_string(schema_version), std::to_string(m.epoch),
              m.owner, m.model, m.token_hash, std::to_string(m.created_ms), std::to_string(ttl_ms_)}}},
           [this, done, id = m.id](std::vector<redisReply*>& r, const std::string& err) {
             done(status_of(r[0], err, id));
           });
  }

  void append(const std::string& id, uint64_t epoch, const stored_turn& t, done_fn done) override {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(7);
    pk.pack(schema_version);
    pk.pack(t.seq);
    pk.pack(t.user);
    pk.pack(t.assistant);
    pk.pack(t.prompt_tokens);
    pk.pack(t.generated_tokens);
    pk.pack(t.committed_at_ms);
    submit({{{"EVAL", append_script, "2", key(id, "meta"), key(id, "turns"), std::to_string(epoch),
              std::to_string(t.seq), std::string(buf.data(), buf.size()), std::to_string(ttl_ms_)}}},
           [this, done, id](std::vector<redisReply*>& r, const std::string& err) { done(status_of(r[0], err, id)); });
  }

  void load(const std::string& id, load_fn done) override {
    submit({{{"HGETALL", key(id, "meta")}, {"LRANGE", key(id, "turns"), "0", "-1"}}},
           [this, done, id](std::vector<redisReply*>& r, const std::string& err) { done(decode(r, err, id)); });
  }

  void remove(const std::string& id, done_fn done) override {
    submit({{{"DEL", key(id, "meta"), key(id, "turns"), key(id, "snap")}}},
           [this, done, id](std::vector<redisReply*>& r, const std::string& err) { done(status_of(r[0], err, id)); });
  }

 private:
  std::string where() const { return "redis " + url_.host + ":" + std::to_string(url_.port); }

  status status_of(redisReply* r, const std::string& conn_error, const std::string& id) const {
    if (!r) return {errc::io, where() + ": " + conn_error};
    if (r->type != REDIS_REPLY_ERROR) return {};
    const std::string msg(r->str, r->len);
    if (msg.rfind("MISSING", 0) == 0) return {errc::not_found, "session " + id + ": " + msg.substr(8)};
    if (msg.rfind("EPOCH", 0) == 0 || msg.rfind("SEQ", 0) == 0 || msg.rfind("EXISTS", 0) == 0)
      return {errc::invalid_argument, "session " + id + ": " + msg.substr(msg.find(' ') + 1)};
    return {errc::io, where() + ": " + msg};
  }

  result<session_snapshot> decode(std::vector<redisReply*>& r, const std::string& conn_error,
                                  const std::string& id) const {
    if (!r[0] || !r[1]) return status{errc::io, where() + ": " + conn_error};
    for (redisReply* x : r)
      if (x->type == REDIS_REPLY_ERROR) return status{errc::io, where() + ": " + std::string(x->str, x->len)};
    if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements == 0)
      return status{errc::not_found, "session " + id + " is not in the store"};
    session_snapshot snap;
    snap.meta.id = id;
    std::string version;
    for (size_t i = 0; i + 1 < r[0]->elements; i += 2) {
      const std::string f(r[0]->element[i]->str, r[0]->element[i]->len);
      const std::string v(r[0]->element[i + 1]->str, r[0]->element[i + 1]->len);
      if (f == "v") version = v;
      else if (f == "epoch") snap.meta.epoch = std::strtoull(v.c_str(), nullptr, 10);
      else if (f == "owner") snap.meta.owner = v;
      else if (f == "model") snap.meta.model = v;
      else if (f == "token") snap.meta.token_hash = v;
      else if (f == "created") snap.meta.created_ms = std::strtoll(v.c_str(), nullptr, 10);
    }
    if (version != std::to_string(schema_version))
      return status{errc::malformed, "session " + id + ": stored with schema version '" + version +
                                         "', this node reads version " + std::to_string(schema_version)};
    const redisReply* list = r[1];
    for (size_t i = 0; i < list->elements; ++i) {
      const redisReply* e = list->element[i];
      stored_turn t;
      try {  // msgpack-c throws on malformed input: convert here, nothing escapes
        msgpack::object_handle h = msgpack::unpack(e->str, e->len);
        const msgpack::object& o = h.get();
        if (o.type != msgpack::type::ARRAY || o.via.array.size != 7 || o.via.array.ptr[0].as<int>() != schema_version)
          throw std::runtime_error("not a version-1 turn record");
        t.seq = o.via.array.ptr[1].as<uint64_t>();
        t.user = o.via.array.ptr[2].as<std::string>();
        t.assistant = o.via.array.ptr[3].as<std::string>();
        t.prompt_tokens = o.via.array.ptr[4].as<uint32_t>();
        t.generated_tokens = o.via.array.ptr[5].as<uint32_t>();
        t.committed_at_ms = o.via.array.ptr[6].as<int64_t>();
      } catch (const std::exception& ex) {
        return status{errc::malformed, "session " + id + ": stored turn " + std::to_string(i + 1) +
                                           " cannot be read (" + ex.what() + "); the session's data is damaged"};
      }
      if (t.seq != i + 1)
        return status{errc::malformed, "session " + id + ": stored turn " + std::to_string(i + 1) + " has seq " +
                                           std::to_string(t.seq)};
      snap.turns.push_back(std::move(t));
    }
    return snap;
  }

  void submit(request r, decltype(request::done) done) {
    r.done = std::move(done);
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_.push_back(std::move(r));
    }
    cv_.notify_one();
  }

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
    auto simple = [&](std::vector<std::string> cmd) -> std::string {
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (auto& a : cmd) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      reply_ptr rep(static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(),
                                                              lens.data())),
                    freeReplyObject);
      if (!rep) return ctx_->errstr;
      if (rep->type == REDIS_REPLY_ERROR) return std::string(rep->str, rep->len);
      return "";
    };
    if (!url_.password.empty()) {
      std::string e = url_.user.empty() ? simple({"AUTH", url_.password}) : simple({"AUTH", url_.user, url_.password});
      if (!e.empty()) return "authentication failed (" + e + ")";
    }
    if (url_.db != 0)
      if (std::string e = simple({"SELECT", std::to_string(url_.db)}); !e.empty()) return e;
    return "";
  }

  void run() {
    auto backoff = std::chrono::milliseconds(100);
    std::chrono::steady_clock::time_point retry_at{};
    for (;;) {
      std::deque<request> batch;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (stop_) {
          batch.swap(queue_);
          lk.unlock();
          for (auto& r : batch) {
            std::vector<redisReply*> none(r.commands.size(), nullptr);
            r.done(none, "the store is shutting down");
          }
          return;
        }
        batch.swap(queue_);
      }
      std::string conn_error;
      if (!ctx_) {
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
        for (auto& r : batch) {
          std::vector<redisReply*> none(r.commands.size(), nullptr);
          r.done(none, conn_error);
        }
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
  int64_t ttl_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<request> queue_;
  bool stop_ = false;
  redisContext* ctx_ = nullptr;  // I/O thread only
  std::string last_error_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<session_store> make_redis_store(const redis_url& url, std::chrono::microseconds retention) {
  return std::make_unique<redis_store>(url, retention);
}

}  // namespace brigade::runtime
