// The Redis session store (design.md, "Persistence"): hiredis on a thread of
// its own (never a CAF scheduler thread), msgpack-c records, checks done
// atomically by Lua scripts.
//
// Layout (hash tag {SID}: one session's keys share a Redis Cluster slot):
//   brigade:{SID}:meta   hash: v (schema), seq, epoch, owner, model, token, created
//   brigade:{SID}:turns  list: one msgpack record per turn, in seq order
// Appending a turn costs O(size of the turn): RPUSH of one record plus a
// hash update, in one script that first checks the seq (must be the next)
// and the epoch (must not be older than the stored one). Every write
// refreshes the sliding expiry (`retention`, 0 = keep forever).
//
// Requests queue without blocking the caller; the I/O thread pipelines
// everything queued into one round trip. When Redis is unreachable, queued
// and in-flight requests fail with errc::io ("redis 127.0.0.1:6379:
// connection refused"), and the next request reconnects (backoff up to 2 s).
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
};

/// Parses redis://[user:password@]host:port/db (port and db optional).
result<redis_url> parse_redis_url(const std::string& url);

std::unique_ptr<session_store> make_redis_store(const redis_url& url, const store_options& opt);

}  // namespace brigade::runtime
