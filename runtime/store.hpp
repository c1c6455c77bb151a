// The session store: where conversations live so that an acknowledged turn
// survives a crashed actor, process or node (design.md, "Persistence").
//
// Asynchronous and pipelinable: every call returns at once and reports
// through its callback, possibly on another thread (the Redis store of issue
// 5 answers from its I/O thread); actors turn callbacks into messages.
// Appends are checked: `expected_seq` must be the next seq and `epoch` must
// not be older than the stored one (ownership fencing), else the append is
// refused and nothing changes. Thread-safe.
//
// Errors: not_found (no such session), invalid_argument (seq or epoch check
// failed: the message says which), io (the store is unavailable; retryable).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/status.hpp"

namespace brigade::runtime {

struct stored_turn {
  uint64_t seq = 0;
  std::string user;
  std::string assistant;
  uint32_t prompt_tokens = 0;
  uint32_t generated_tokens = 0;
  int64_t committed_at_ms = 0;
};

struct session_meta {
  std::string id;
  std::string token_hash;  // SHA-256 of the secret token, hex; the token itself is never stored
  std::string model;       // identity of the model the session was created with
  std::string owner;       // node name
  uint64_t epoch = 1;
  int64_t created_ms = 0;
};

struct session_snapshot {
  session_meta meta;
  std::vector<stored_turn> turns;  // in seq order, seq 1..n
};

class session_store {
 public:
  using done_fn = std::function<void(status)>;
  using load_fn = std::function<void(result<session_snapshot>)>;
  virtual ~session_store() = default;
  /// Creates an empty session; fails if the id exists.
  virtual void create(const session_meta& meta, done_fn done) = 0;
  /// Appends turn `t` (t.seq must equal the stored last seq + 1).
  virtual void append(const std::string& id, uint64_t epoch, const stored_turn& t, done_fn done) = 0;
  virtual void load(const std::string& id, load_fn done) = 0;
  virtual void remove(const std::string& id, done_fn done) = 0;
  /// "memory" or "redis://host:port/db" (no password).
  virtual std::string describe() const = 0;
};

/// The in-process store: for tests and the zero-setup default. Sessions expire
/// after `retention` without writes (0 keeps forever).
std::unique_ptr<session_store> make_memory_store(std::chrono::microseconds retention);

/// SHA-256 of `text` as lowercase hex.
std::string sha256_hex(const std::string& text);
/// `n` random bytes from the OS, as lowercase hex.
std::string random_hex(size_t n);
/// Milliseconds since the epoch.
int64_t now_ms();

}  // namespace brigade::runtime
