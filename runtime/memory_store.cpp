#include <algorithm>
#include <functional>
#include <map>
#include <mutex>

#include "runtime/clock.hpp"
#include "runtime/store.hpp"

namespace brigade::runtime {

namespace {

class memory_store final : public session_store {
 public:
  memory_store(const store_options& opt, std::function<int64_t()> now)
      : clock_ms_(std::move(now)), retention_ms_(opt.retention.count() / 1000), lease_ms_(opt.lease.count() / 1000) {}

  void create(const session_meta& meta, done_fn done) override {
    store_status s;
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      if (sessions_.count(meta.id)) {
        s = {store_errc::invalid_argument, "session " + meta.id + " already exists"};
      } else {
        entry e;
        e.snap.meta = meta;
        e.snap.meta.epoch = 1;
        e.touched_ms = clock_ms_();
        e.lease_until_ms = e.touched_ms + lease_ms_;
        sessions_.emplace(meta.id, std::move(e));
      }
    }
    done(s);
  }

  void acquire(const std::string& id, const claimant& who, acquire_fn done) override {
    store_result<session_snapshot> r = missing(id);
    lease_holder holder;
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      if (auto it = sessions_.find(id); it != sessions_.end()) {
        entry& e = it->second;
        const int64_t now = clock_ms_();
        const auto& m = e.snap.meta;
        const bool held = !m.owner.empty() && m.owner != who.node && e.lease_until_ms > now;
        const bool void_lease = held && !m.owner_incarnation.empty() &&
                                std::find(who.dead.begin(), who.dead.end(), m.owner_incarnation) != who.dead.end();
        if (held && !void_lease) {
          holder = {m.owner, m.owner_incarnation, e.lease_until_ms - now};
          r = store_status{store_errc::conflict, "session " + id + ": owned by node " + m.owner + " for " +
                                                     std::to_string(e.lease_until_ms - now) + " ms more"};
        } else {
          ++e.snap.meta.epoch;
          e.snap.meta.owner = who.node;
          e.snap.meta.owner_incarnation = who.incarnation;
          e.lease_until_ms = now + lease_ms_;
          e.touched_ms = now;
          r = e.snap;
          r->failover = void_lease;
        }
      }
    }
    done(std::move(r), holder);
  }

  void locate(const std::string& id, const std::vector<std::string>& dead, locate_fn done) override {
    store_result<lease_holder> r = missing(id);
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      if (auto it = sessions_.find(id); it != sessions_.end()) {
        const auto& m = it->second.snap.meta;
        const int64_t now = clock_ms_();
        const bool void_lease = !m.owner_incarnation.empty() &&
                                std::find(dead.begin(), dead.end(), m.owner_incarnation) != dead.end();
        lease_holder h;
        if (!m.owner.empty() && it->second.lease_until_ms > now && !void_lease)
          h = {m.owner, m.owner_incarnation, it->second.lease_until_ms - now};
        r = std::move(h);
      }
    }
    done(std::move(r));
  }

  void renew(const std::string& id, uint64_t epoch, done_fn done) override {
    store_status s;
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      auto it = sessions_.find(id);
      if (it == sessions_.end())
        s = missing(id);
      else if (epoch != it->second.snap.meta.epoch)
        s = moved(id, epoch, it->second);
      else {
        it->second.touched_ms = clock_ms_();  // a live session does not expire under its owner
        it->second.lease_until_ms = it->second.touched_ms + lease_ms_;
      }
    }
    done(s);
  }

  void release(const std::string& id, uint64_t epoch, done_fn done) override {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (auto it = sessions_.find(id); it != sessions_.end() && it->second.snap.meta.epoch == epoch) {
        it->second.snap.meta.owner.clear();
        it->second.lease_until_ms = 0;
      }
    }
    done({});
  }

  void append(const std::string& id, uint64_t epoch, const turn_record& t, done_fn done) override {
    store_status s;
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      auto it = sessions_.find(id);
      if (it == sessions_.end()) {
        s = missing(id);
      } else if (epoch != it->second.snap.meta.epoch) {
        s = moved(id, epoch, it->second);
      } else if (t.seq != it->second.snap.turns.size() + 1) {
        s = {store_errc::invalid_argument, "session " + id + ": seq " + std::to_string(t.seq) +
                                               " is not the next seq " +
                                               std::to_string(it->second.snap.turns.size() + 1)};
      } else {
        it->second.snap.turns.push_back(t);
        it->second.touched_ms = clock_ms_();
        it->second.lease_until_ms = it->second.touched_ms + lease_ms_;
      }
    }
    done(s);
  }

  void load(const std::string& id, load_fn done) override {
    store_result<session_snapshot> r = missing(id);
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      auto it = sessions_.find(id);
      if (it != sessions_.end()) r = it->second.snap;
    }
    done(std::move(r));
  }

  void compact(const std::string& id, done_fn done) override {
    std::lock_guard<std::mutex> g(mu_);
    const bool found = sessions_.count(id) > 0;
    done(found ? store_status{} : missing(id));
  }

  void remove(const std::string& id, done_fn done) override {
    {
      std::lock_guard<std::mutex> g(mu_);
      sessions_.erase(id);
    }
    done({});
  }

  std::string describe() const override { return "memory"; }

 private:
  struct entry {
    session_snapshot snap;
    int64_t touched_ms = 0;
    int64_t lease_until_ms = 0;
  };
  static store_status missing(const std::string& id) {
    return {store_errc::not_found, "session " + id + " is not in the store (expired or deleted)"};
  }
  static store_status moved(const std::string& id, uint64_t epoch, const entry& e) {
    return {store_errc::conflict, "session " + id + ": ownership moved to node " + e.snap.meta.owner + " (epoch " +
                                      std::to_string(epoch) + " is not the current " +
                                      std::to_string(e.snap.meta.epoch) + ")"};
  }
  void expire_locked() {
    if (retention_ms_ <= 0) return;
    const int64_t cutoff = clock_ms_() - retention_ms_;
    for (auto it = sessions_.begin(); it != sessions_.end();)
      it = it->second.touched_ms < cutoff ? sessions_.erase(it) : std::next(it);
  }
  std::function<int64_t()> clock_ms_;  // wall clock in ms (injected by tests)
  int64_t retention_ms_;
  int64_t lease_ms_;
  std::mutex mu_;
  std::map<std::string, entry> sessions_;
};

}  // namespace

std::unique_ptr<session_store> make_memory_store(const store_options& opt, std::function<int64_t()> clock_ms) {
  return std::make_unique<memory_store>(opt, clock_ms ? std::move(clock_ms) : std::function<int64_t()>(now_ms));
}

}  // namespace brigade::runtime
