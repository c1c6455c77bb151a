// The session store: where conversations live so that an acknowledged turn
// survives a crashed actor, process or node (docs/design.md, "Redis layout").
//
// Asynchronous and pipelinable: every call returns at once and reports
// through its callback, possibly on another thread (the Redis store of issue
// 5 answers from its I/O thread); actors turn callbacks into messages.
//
// Ownership (docs/design.md, invariant 3): a live session is owned by one node,
// which holds a lease on it in the store. `create` and `acquire` take the
// lease; `acquire` raises the session's epoch, and every write must carry
// the current epoch, so a stale owner (an old process of a restarted node,
// a node cut off by a partition) can no longer write once another owner took
// the session. A lease is keyed by the stable node name: the same name takes
// its sessions back at once (a restarted node); another name must wait until
// the lease expires. Leases are renewed by every append and by `renew`, and
// given back by `release` (passivation, shutdown).
//
// Appends are checked atomically: `t.seq` must be the next seq and `epoch`
// the current epoch, else the append is refused and nothing changes.
// Thread-safe.
//
// Errors (store_errc below, each with a sentence naming the session and the
// cause); on any error nothing changed in the store.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/base/status.hpp"
#include "runtime/turn_record.hpp"

namespace brigade::runtime {

/// The store's error codes (the engine's are kernels' errc).
enum class store_errc {
  ok = 0,
  not_found,         ///< no such session (never created, expired or deleted)
  invalid_argument,  ///< the seq is not the next one, or the session exists at create
  conflict,          ///< the epoch is no longer current (another owner took the session), or at
                     ///< acquire another node holds a live lease (the sentence says which, how long)
  malformed,         ///< the stored data cannot be read (the sentence says which record)
  io,                ///< the store is unavailable; retryable
};
using store_status = basic_status<store_errc>;
template <class T>
using store_result = result<T, store_status>;

struct session_meta {
  std::string id;
  std::string token_hash;  // SHA-256 of the secret token, hex; the token itself is never stored
  std::string model;       // identity of the model the session was created with
  std::string owner;       // node name holding the lease
  std::string owner_incarnation;  // the holder's process (cluster incarnation; "" outside a cluster)
  uint64_t epoch = 1;      // raised by every acquire; writes must carry it
  int64_t created_ms = 0;
  std::string system;  // the session's system prompt, "" for none (meta schema 3, written only when set)
};

struct store_options {
  std::chrono::microseconds retention = std::chrono::minutes(30);  // sliding expiry; 0 keeps forever
  std::chrono::microseconds lease = std::chrono::seconds(15);      // ownership lease
  /// Redis: fold the turn list into the snapshot once it holds this many
  /// turns and at least as many as the snapshot (so compaction work stays
  /// O(1) per turn, amortised). 0 turns compaction off.
  uint32_t compact_min = 64;
};

/// Who asks for a session's lease at acquire.
struct claimant {
  std::string node;         // node name
  std::string incarnation;  // this process in the cluster ("" outside a cluster)
  /// Incarnations the cluster declared dead: a lease they hold is void, so
  /// their sessions are taken at once instead of when the lease expires.
  std::vector<std::string> dead;
};

/// The live holder of a lease that refused an acquire (empty otherwise).
struct lease_holder {
  std::string node;
  std::string incarnation;
  int64_t remaining_ms = 0;
};

struct session_snapshot {
  session_meta meta;
  std::vector<turn_record> turns;  // in seq order, seq 1..n
  bool failover = false;           // acquire: the lease of a dead incarnation was taken over
};

class session_store {
 public:
  using done_fn = std::function<void(store_status)>;
  using load_fn = std::function<void(store_result<session_snapshot>)>;
  /// The acquire's result; on a conflict with a live lease, its holder.
  using acquire_fn = std::function<void(store_result<session_snapshot>, lease_holder)>;
  virtual ~session_store() = default;
  /// Creates an empty session owned by `meta.owner` with epoch 1; fails if
  /// the id exists.
  virtual void create(const session_meta& meta, done_fn done) = 0;
  /// Takes the lease for `who` (see above), raises the epoch, and returns
  /// the whole session with its new epoch in `meta.epoch`. A lease held by
  /// one of `who.dead` is taken at once (failover); `meta.owner_incarnation`
  /// of the result is then the dead holder's, `meta.owner` the new one.
  virtual void acquire(const std::string& id, const claimant& who, acquire_fn done) = 0;
  /// The same, outside a cluster.
  void acquire(const std::string& id, const std::string& owner, load_fn done) {
    acquire(id, claimant{owner, {}, {}}, [done](store_result<session_snapshot> r, const lease_holder&) {
      done(std::move(r));
    });
  }
  /// Who holds the session's lease now, without touching it (placement: a
  /// node that is not the session's place asks first whether it has a live
  /// owner). The holder if its lease is live and not held by one of `dead`;
  /// an empty `node` if nobody may serve it now; not_found if it does not exist.
  using locate_fn = std::function<void(store_result<lease_holder>)>;
  virtual void locate(const std::string& id, const std::vector<std::string>& dead, locate_fn done) = 0;
  /// Extends the lease of the owner of `epoch`; conflict if it lost it.
  virtual void renew(const std::string& id, uint64_t epoch, done_fn done) = 0;
  /// Gives the lease back (the epoch stays), so any node may take the
  /// session at once; does nothing if `epoch` is no longer current.
  virtual void release(const std::string& id, uint64_t epoch, done_fn done) = 0;
  /// Appends turn `t` (t.seq must equal the stored last seq + 1, `epoch` the
  /// current epoch) and renews the lease.
  virtual void append(const std::string& id, uint64_t epoch, const turn_record& t, done_fn done) = 0;
  /// Reads the session without touching its lease (verification, tools).
  virtual void load(const std::string& id, load_fn done) = 0;
  /// Folds the session's turn list into its snapshot now (Redis; the memory
  /// store keeps one vector and has nothing to fold). Appends do this by
  /// themselves off the commit path; this call is for tools and benchmarks.
  virtual void compact(const std::string& id, done_fn done) = 0;
  virtual void remove(const std::string& id, done_fn done) = 0;
  /// "memory" or "redis://host:port/db" (no password).
  virtual std::string describe() const = 0;
};

/// The in-process store: for tests and the zero-setup default. Sessions expire
/// after `retention` without writes (0 keeps forever). Its leases and expiry
/// follow `clock_ms` (milliseconds; default the wall clock, runtime/clock.hpp).
std::unique_ptr<session_store> make_memory_store(const store_options& opt, std::function<int64_t()> clock_ms = {});

}  // namespace brigade::runtime
