#include "runtime/redis_store.hpp"

#include <map>
#include <mutex>
#include <sstream>

#include "runtime/redis_connection.hpp"
#include "runtime/redis_records.hpp"
#include "runtime/redis_scripts.hpp"

namespace brigade::runtime {

namespace {

using namespace redis;

std::string key(const std::string& id, const char* part) { return "brigade:{" + id + "}:" + part; }

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
    // A system prompt raises the meta to schema 3 (builds before it refuse
    // the session rather than serve it without its system prompt).
    const int v = m.system.empty() ? meta_schema_version : meta_schema_version_system;
    commits_->submit({{"EVAL", create_script, "1", key(m.id, "meta"), std::to_string(v), m.owner,
                       m.model, m.token_hash, std::to_string(m.created_ms), std::to_string(ttl_ms_),
                       std::to_string(lease_ms_), m.owner_incarnation, m.system}},
                     [this, done, id = m.id](std::vector<redisReply*>& r, const std::string& err) {
                       done(status_of(r[0], err, id));
                     });
  }

  void acquire(const std::string& id, const claimant& who, acquire_fn done) override {
    command script{"EVAL",           acquire_script,    "3", key(id, "meta"), key(id, "turns"), key(id, "snap"),
                   who.node,         std::to_string(lease_ms_), std::to_string(ttl_ms_),
                   std::to_string(meta_schema_version), who.incarnation};
    for (const std::string& d : who.dead) script.push_back(d);
    std::vector<command> cmds{std::move(script)};
    for (auto& c : read_commands(id)) cmds.push_back(std::move(c));
    commits_->submit(std::move(cmds), [this, done, id, who](std::vector<redisReply*>& r, const std::string& err) {
      lease_holder holder = holder_of(r[0]);
      if (store_status s = status_of(r[0], err, id); !s) return done(s, holder);
      // The script and the read are one round trip but two steps: another
      // acquire (an old process under the same node name) may fall between.
      // The script's epoch is ours; a newer one read back means we lost.
      const redisReply* a = r[0];
      const bool shaped = a->type == REDIS_REPLY_ARRAY && a->elements == 2;
      const uint64_t epoch = shaped ? static_cast<uint64_t>(a->element[0]->integer) : 0;
      store_result<session_snapshot> snap = decode(r.back(), err, id);
      if (!snap) {  // unreadable data: give the lease back rather than hold a session nobody can serve
        release(id, epoch, [](store_status) {});
        return done(snap, holder);
      }
      if (snap->meta.epoch != epoch)
        return done(store_status{store_errc::conflict, "session " + id + ": taken by another process of node " +
                                                           who.node + " while restoring (epoch " +
                                                           std::to_string(epoch) + " is not the current " +
                                                           std::to_string(snap->meta.epoch) + ")"},
                    holder);
      snap->failover = shaped && a->element[1]->integer == 1;
      done(std::move(snap), holder);
    });
  }

  void locate(const std::string& id, const std::vector<std::string>& dead, locate_fn done) override {
    command script{"EVAL", locate_script, "1", key(id, "meta")};
    for (const std::string& d : dead) script.push_back(d);
    commits_->submit({std::move(script)}, [this, done, id](std::vector<redisReply*>& r, const std::string& err) {
      if (store_status s = status_of(r[0], err, id); !s) return done(s);
      const redisReply* a = r[0];
      if (a->type != REDIS_REPLY_ARRAY || a->elements != 3 || a->element[0]->type != REDIS_REPLY_STRING ||
          a->element[1]->type != REDIS_REPLY_STRING)
        return done(store_status{store_errc::malformed, "session " + id + ": the lease lookup answered in an unknown shape"});
      lease_holder h;
      h.node.assign(a->element[0]->str, a->element[0]->len);
      h.incarnation.assign(a->element[1]->str, a->element[1]->len);
      h.remaining_ms = a->element[2]->integer;
      done(std::move(h));
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
                       store_status s = status_of(r[0], err, id);
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
    compact_now(id, [](store_status) {});
  }

  void compact_now(const std::string& id, done_fn done) {
    auto finish = [this, id, done](store_status s) {
      std::vector<done_fn> waiting;
      {
        std::lock_guard<std::mutex> g(mu_);
        auto it = compacting_.find(id);
        waiting.swap(it->second);
        if (waiting.empty()) compacting_.erase(it);
      }
      done(std::move(s));
      if (!waiting.empty())
        compact_now(id, [waiting](store_status s2) {
          for (const auto& w : waiting) w(s2);
        });
    };
    background_->submit(read_commands(id), [this, id, finish](std::vector<redisReply*>& r, const std::string& err) {
      const redisReply* tx = r.back();
      if (!tx) return finish({store_errc::io, background_->where() + ": " + err});
      if (tx->type != REDIS_REPLY_ARRAY || tx->elements != 3) return finish(status_of(tx, err, id));
      const redisReply* meta = tx->element[0];
      if (meta->type != REDIS_REPLY_ARRAY || meta->elements == 0)
        return finish({store_errc::not_found, "session " + id + " is not in the store"});
      std::string snap_seq = "0";  // sessions written before compaction existed have no field
      for (size_t i = 0; i + 1 < meta->elements; i += 2)
        if (std::string(meta->element[i]->str, meta->element[i]->len) == "snap_seq")
          snap_seq.assign(meta->element[i + 1]->str, meta->element[i + 1]->len);
      const size_t folded = tx->element[2]->elements;
      if (folded == 0) return finish({});
      std::vector<turn_record> turns;
      if (store_status s = unpack_history(id, tx->element[1], tx->element[2], turns); !s) return finish(s);
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

  /// The holder named by an acquire's "OWNED <ms> <incarnation or -> <node>".
  static lease_holder holder_of(const redisReply* r) {
    lease_holder h;
    if (!r || r->type != REDIS_REPLY_ERROR) return h;
    std::istringstream in(std::string(r->str, r->len));
    std::string word;
    if (!(in >> word) || word != "OWNED" || !(in >> h.remaining_ms >> h.incarnation)) return {};
    if (h.incarnation == "-") h.incarnation.clear();
    std::getline(in >> std::ws, h.node);
    return h;
  }

  store_status status_of(const redisReply* r, const std::string& conn_error, const std::string& id) const {
    if (!r) return {store_errc::io, where() + ": " + conn_error};
    if (r->type != REDIS_REPLY_ERROR) return {};
    const std::string msg(r->str, r->len);
    const std::string word = msg.substr(0, msg.find(' '));
    const std::string rest = msg.find(' ') == std::string::npos ? msg : msg.substr(msg.find(' ') + 1);
    if (word == "MISSING") return {store_errc::not_found, "session " + id + ": " + rest};
    if (word == "OWNED") {
      const lease_holder h = holder_of(r);
      return {store_errc::conflict, "session " + id + ": owned by node " + h.node + " for " +
                                        std::to_string(h.remaining_ms) + " ms more"};
    }
    if (word == "EPOCH") return {store_errc::conflict, "session " + id + ": " + rest};
    if (word == "SEQ" || word == "EXISTS") return {store_errc::invalid_argument, "session " + id + ": " + rest};
    if (word == "SCHEMA") return {store_errc::malformed, "session " + id + ": " + rest};
    return {store_errc::io, where() + ": " + msg};
  }

  store_result<session_snapshot> decode(const redisReply* tx, const std::string& conn_error,
                                        const std::string& id) const {
    if (!tx) return store_status{store_errc::io, where() + ": " + conn_error};
    if (tx->type != REDIS_REPLY_ARRAY || tx->elements != 3) {
      if (store_status s = status_of(tx, conn_error, id); !s) return s;
      return store_status{store_errc::io, where() + ": unexpected reply to a read"};
    }
    for (size_t i = 0; i < 3; ++i)
      if (tx->element[i]->type == REDIS_REPLY_ERROR)
        return store_status{store_errc::io, where() + ": " + std::string(tx->element[i]->str, tx->element[i]->len)};
    const redisReply* meta = tx->element[0];
    if (meta->type != REDIS_REPLY_ARRAY || meta->elements == 0)
      return store_status{store_errc::not_found, "session " + id + " is not in the store"};
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
      else if (f == "inc")
        snap.meta.owner_incarnation = v;
      else if (f == "sys")
        snap.meta.system = v;
    }
    if (version != std::to_string(meta_schema_version) && version != "1" &&
        version != std::to_string(meta_schema_version_system))
      return store_status{store_errc::malformed, "session " + id + ": stored with schema version '" + version +
                                                     "', this node reads versions 1 to " +
                                                     std::to_string(meta_schema_version_system)};
    if (store_status s = unpack_history(id, tx->element[1], tx->element[2], snap.turns); !s) return s;
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
