#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "runtime/store.hpp"

namespace brigade::runtime {

namespace {

class memory_store final : public session_store {
 public:
  explicit memory_store(std::chrono::microseconds retention) : retention_ms_(retention.count() / 1000) {}

  void create(const session_meta& meta, done_fn done) override {
    status s;
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      if (sessions_.count(meta.id)) {
        s = {errc::invalid_argument, "session " + meta.id + " already exists"};
      } else {
        entry e;
        e.snap.meta = meta;
        e.touched_ms = now_ms();
        sessions_.emplace(meta.id, std::move(e));
      }
    }
    done(s);
  }

  void append(const std::string& id, uint64_t epoch, const stored_turn& t, done_fn done) override {
    status s;
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      auto it = sessions_.find(id);
      if (it == sessions_.end()) {
        s = {errc::not_found, "session " + id + " is not in the store (expired or deleted)"};
      } else if (epoch < it->second.snap.meta.epoch) {
        s = {errc::invalid_argument, "session " + id + ": stale owner epoch " + std::to_string(epoch) + " < " +
                                         std::to_string(it->second.snap.meta.epoch)};
      } else if (t.seq != it->second.snap.turns.size() + 1) {
        s = {errc::invalid_argument, "session " + id + ": seq " + std::to_string(t.seq) + " is not the next seq " +
                                         std::to_string(it->second.snap.turns.size() + 1)};
      } else {
        it->second.snap.meta.epoch = epoch;
        it->second.snap.turns.push_back(t);
        it->second.touched_ms = now_ms();
      }
    }
    done(s);
  }

  void load(const std::string& id, load_fn done) override {
    result<session_snapshot> r = status{errc::not_found, "session " + id + " is not in the store"};
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      auto it = sessions_.find(id);
      if (it != sessions_.end()) {
        it->second.touched_ms = now_ms();  // reading a session keeps it alive (sliding expiry)
        r = it->second.snap;
      }
    }
    done(std::move(r));
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
  };
  void expire_locked() {
    if (retention_ms_ <= 0) return;
    const int64_t cutoff = now_ms() - retention_ms_;
    for (auto it = sessions_.begin(); it != sessions_.end();)
      it = it->second.touched_ms < cutoff ? sessions_.erase(it) : std::next(it);
  }
  int64_t retention_ms_;
  std::mutex mu_;
  std::map<std::string, entry> sessions_;
};

}  // namespace

std::unique_ptr<session_store> make_memory_store(std::chrono::microseconds retention) {
  return std::make_unique<memory_store>(retention);
}

namespace {
std::string to_hex(const unsigned char* p, size_t n) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += hex[p[i] >> 4];
    out += hex[p[i] & 15];
  }
  return out;
}
}  // namespace

std::string sha256_hex(const std::string& text) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d);
  return to_hex(d, sizeof d);
}

std::string random_hex(size_t n) {
  std::vector<unsigned char> b(n);
  if (RAND_bytes(b.data(), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "brigade: %s:%d: the OS gave no random bytes; refusing to mint guessable session ids\n",
                 __FILE__, __LINE__);
    std::abort();
  }
  return to_hex(b.data(), n);
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace brigade::runtime
