// The Redis session store (docs/design.md, "Redis layout"; docs/redis.md): hiredis on a thread of
// its own (never a CAF scheduler thread), msgpack-c records, checks done
// atomically by Lua scripts.
//
// Layout (hash tag {SID}: one session's keys share a Redis Cluster slot):
//   brigade:{SID}:meta   hash: v (schema), seq, epoch, owner, lease (deadline,
//                        Redis ms), model, token (SHA-256), created, snap_seq
//   brigade:{SID}:turns  list: one msgpack record per turn after the snapshot
//   brigade:{SID}:snap   the compacted turns 1..snap_seq (runtime/redis_records.hpp)
// Appending a turn costs O(size of the turn): RPUSH of one record plus a
// hash update, in one script that first checks the epoch (must equal the
// stored one) and the seq (must be the next). Compaction folds the list into
// the snapshot on a second connection, off the commit path. Every write
// refreshes the sliding expiry (`retention`, 0 = keep forever).
//
// Requests queue without blocking the caller (runtime/redis_connection.hpp):
// when Redis is unreachable they fail with errc::io ("redis 127.0.0.1:6379:
// connection refused"), and the next request reconnects.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "runtime/store.hpp"

namespace brigade::runtime {

struct redis_url {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user, password;
  bool single_credential = false;  // "redis://X@host": one field, read as the password
};

/// Parses redis://[user:password@]host:port/db (port and db optional).
result<redis_url> parse_redis_url(const std::string& url);

std::unique_ptr<session_store> make_redis_store(const redis_url& url, const store_options& opt);

}  // namespace brigade::runtime
