// Cluster membership in Redis (docs/cluster.md): the table of the nodes of
// one cluster, their heartbeats, and the votes that declare a node dead.
// Plain C++ on a Redis connection of its own (heartbeats never queue behind
// commits); every call is one Lua script, atomic, on Redis' clock.
//
// Layout (hash tag {cluster}: every cluster key shares one Redis Cluster
// slot; a session's keys use the session's own tag, so no script spans two):
//   brigade:{cluster}:name          the cluster name bound to this database
//                                   (no expiry; delete it to rebind)
//   brigade:{cluster}:nodes         hash: node name -> msgpack member record
//   brigade:{cluster}:votes:INC     sorted set: the members that reported
//                                   INC -> when (a vote counts for vote_ttl)
//
// Rules (each enforced inside one script):
// - join: refused when the database belongs to another cluster name, when a
//   live member serves another model, or when a live member has the same name
//   (unless the caller names that incarnation as replaced: the old process is
//   gone).
// - heartbeat: refused (`declared_dead`) when the caller's record is dead or
//   belongs to another incarnation; marks members whose heartbeat is older
//   than `expiry` dead, drops dead ones after `forget`, and returns the table.
// - report: a live member's vote against one incarnation; with A active
//   members (the suspect included) the suspect is dead once
//   (A > 2 ? A/2 + 1 : 1) live members reported it within vote_ttl. Reports
//   from a dead member and against a replaced incarnation are refused; a
//   reporter that hears the suspect again withdraws its vote.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/redis_store.hpp"
#include "runtime/store.hpp"

namespace brigade::runtime {

/// One node as the table holds it. Its load figures are the node object of
/// docs/cli.md (sessions, queue_depth, tokens_per_second, ...).
struct member {
  std::string name;
  std::string address;  // HOST:PORT others dial (BASP)
  std::string incarnation;
  std::string state;  // joining | active | draining | dead
  std::string model;
  uint32_t version = 0;  // protocol version
  double capacity = 1;
  int64_t heartbeat_ms = 0;  // Redis clock
  int64_t joined_ms = 0;
  int64_t died_ms = 0;
  std::string cause;                    // why it was declared dead
  std::map<std::string, double> load;  // the node object's figures
};

struct member_table {
  int64_t now_ms = 0;  // Redis clock when read
  std::vector<member> members;
  const member* find(const std::string& name) const;
};

struct membership_options {
  std::string cluster = "brigade";
  std::chrono::milliseconds expiry{3000};  // a heartbeat older than this is dead
  std::chrono::milliseconds forget{60000};  // dead entries leave the table after this
  std::chrono::milliseconds vote_ttl{1500};  // a report counts this long
};

/// Errors: invalid_argument (another cluster, another model: the sentence
/// names both), conflict (join: a live process has the name, `live` says
/// where; heartbeat/report: this incarnation was declared dead), io.
class membership {
 public:
  using done_fn = std::function<void(store_status)>;
  using join_fn = std::function<void(store_status, member live)>;
  using table_fn = std::function<void(store_result<member_table>)>;
  /// What a report achieved.
  enum class verdict { pending, declared, was_dead };  // votes missing; dead by this report; dead before
  using report_fn = std::function<void(store_result<verdict>)>;

  membership(const redis_url& url, membership_options opt);
  ~membership();

  const membership_options& options() const { return opt_; }
  /// Registers `me` as joining. `replaces` names an incarnation of the same
  /// name known to be gone (empty: none).
  void join(const member& me, const std::string& replaces, join_fn done);
  /// Writes this node's heartbeat (state and load) and returns the table.
  void heartbeat(const member& me, table_fn done);
  void report(const member& me, const std::string& suspect, const std::string& suspect_incarnation,
              report_fn done);
  /// Withdraws this node's vote against `suspect_incarnation`.
  void withdraw(const member& me, const std::string& suspect_incarnation, done_fn done);
  /// Removes this incarnation's entry (a node that leaves cleanly).
  void leave(const member& me, done_fn done);
  void table(table_fn done);

 private:
  struct impl;
  membership_options opt_;
  std::unique_ptr<impl> p_;
};

}  // namespace brigade::runtime
