#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "runtime/store.hpp"

namespace brigade::runtime {

namespace {

class memory_store final : public session_store {
 public:
  explicit memory_store(const store_options& opt)
      : retention_ms_(opt.retention.count() / 1000), lease_ms_(opt.lease.count() / 1000) {}

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
        e.snap.meta.epoch = 1;
        e.touched_ms = now_ms();
        e.lease_until_ms = e.touched_ms + lease_ms_;
        sessions_.emplace(meta.id, std::move(e));
      }
    }
    done(s);
  }

  void acquire(const std::string& id, const std::string& owner, load_fn done) override {
    result<session_snapshot> r = missing(id);
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      if (auto it = sessions_.find(id); it != sessions_.end()) {
        entry& e = it->second;
        const int64_t now = now_ms();
        if (!e.snap.meta.owner.empty() && e.snap.meta.owner != owner && e.lease_until_ms > now) {
          r = status{errc::conflict, "session " + id + ": owned by node " + e.snap.meta.owner + " for " +
                                         std::to_string(e.lease_until_ms - now) + " ms more"};
        } else {
          ++e.snap.meta.epoch;
          e.snap.meta.owner = owner;
          e.lease_until_ms = now + lease_ms_;
          e.touched_ms = now;
          r = e.snap;
        }
      }
    }
    done(std::move(r));
  }

  void renew(const std::string& id, uint64_t epoch, done_fn done) override {
    status s;
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      auto it = sessions_.find(id);
      if (it == sessions_.end())
        s = missing(id);
      else if (epoch != it->second.snap.meta.epoch)
        s = moved(id, epoch, it->second);
      else {
        it->second.touched_ms = now_ms();  // a live session does not expire under its owner
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
    status s;
    {
      std::lock_guard<std::mutex> g(mu_);
      expire_locked();
      auto it = sessions_.find(id);
      if (it == sessions_.end()) {
        s = missing(id);
      } else if (epoch != it->second.snap.meta.epoch) {
        s = moved(id, epoch, it->second);
      } else if (t.seq != it->second.snap.turns.size() + 1) {
        s = {errc::invalid_argument, "session " + id + ": seq " + std::to_string(t.seq) + " is not the next seq " +
                                         std::to_string(it->second.snap.turns.size() + 1)};
      } else {
        it->second.snap.turns.push_back(t);
        it->second.touched_ms = now_ms();
        it->second.lease_until_ms = it->second.touched_ms + lease_ms_;
      }
    }
    done(s);
  }

  void load(const std::string& id, load_fn done) override {
    result<session_snapshot> r = missing(id);
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
    done(found ? status{} : missing(id));
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
  static status missing(const std::string& id) {
    return {errc::not_found, "session " + id + " is not in the store (expired or deleted)"};
  }
  static status moved(const std::string& id, uint64_t epoch, const entry& e) {
    return {errc::conflict, "session " + id + ": ownership moved to node " + e.snap.meta.owner + " (epoch " +
                                std::to_string(epoch) + " is not the current " + std::to_string(e.snap.meta.epoch) +
                                ")"};
  }
  void expire_locked() {
    if (retention_ms_ <= 0) return;
    const int64_t cutoff = now_ms() - retention_ms_;
    for (auto it = sessions_.begin(); it != sessions_.end();)
      it = it->second.touched_ms < cutoff ? sessions_.erase(it) : std::next(it);
  }
  int64_t retention_ms_;
  int64_t lease_ms_;
  std::mutex mu_;
  std::map<std::string, entry> sessions_;
};

}  // namespace

std::unique_ptr<session_store> make_memory_store(const store_options& opt) {
  return std::make_unique<memory_store>(opt);
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

std::string sha256_hex(const std::string& text) { return sha256_hex(std::vector<std::string_view>{text}); }

std::string sha256_hex(const std::vector<std::string_view>& parts) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (std::string_view p : parts) EVP_DigestUpdate(ctx, p.data(), p.size());
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, d, &len);
  EVP_MD_CTX_free(ctx);
  return to_hex(d, len);
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
