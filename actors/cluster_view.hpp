// What a node's actors need to know about the cluster, shared and
// thread-safe: this process's incarnation, whether it may serve (not while
// declared dead), the incarnations declared dead (their leases are void),
// which peers the cluster actor reaches now (for forwarding), and where a
// session without a live owner goes (placement over the active members it
// reaches, this node included while it is active). The
// cluster actor (actors/cluster.hpp) writes it; sessions and the supervisor
// read it. Outside a cluster it stays disabled: no incarnation, always
// serving, nobody dead.
#pragma once

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "runtime/dashboard.hpp"
#include "runtime/placement.hpp"
#include "runtime/scaling.hpp"
#include "runtime/store.hpp"

namespace brigade::actors {

class cluster_view {
 public:
  using clock = std::chrono::steady_clock;
  using clock_point = clock::time_point;

  cluster_view() = default;
  cluster_view(std::string cluster, std::string incarnation)
      : enabled_(true), cluster_(std::move(cluster)), incarnation_(std::move(incarnation)) {}

  bool enabled() const { return enabled_; }
  const std::string& cluster() const { return cluster_; }

  std::string incarnation() const {
    std::lock_guard<std::mutex> g(mu_);
    return incarnation_;
  }
  /// A new incarnation (rejoining after this node was declared dead).
  void set_incarnation(std::string inc) {
    std::lock_guard<std::mutex> g(mu_);
    incarnation_ = std::move(inc);
  }

  /// Whether this node may serve now, or why not ("" = it may): not from
  /// the moment it learns it was declared dead until it has rejoined, and
  /// not while its last successful heartbeat is older than the expiry (then
  /// the others may have declared it dead by now: a node resumed after a
  /// freeze must not answer from what it held before it hears the table).
  std::string not_serving() const {
    std::lock_guard<std::mutex> g(mu_);
    if (!enabled_) return "";
    if (!serving_) return "this node was declared dead by the cluster and is rejoining";
    const auto now = clock::now();
    if (doubt_ || (window_.count() > 0 && now - last_tick_ > window_))
      return "this node did not run for a while (frozen or starved), so it may have been declared dead; it checks "
             "the membership table first";
    const auto silent = now - last_beat_;
    if (silent > expiry_)
      return "this node has not reached the membership table for " +
             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(silent).count()) +
             " ms, so it may have been declared dead";
    return "";
  }
  bool serving() const { return not_serving().empty(); }
  void set_serving(bool s) {
    std::lock_guard<std::mutex> g(mu_);
    serving_ = s;
  }
  /// A heartbeat sent at `sent` (or the join) succeeded; `expiry` is the
  /// membership's. It ends a doubt that began before it was sent.
  void beat(std::chrono::milliseconds expiry, clock_point sent = clock::now()) {
    std::lock_guard<std::mutex> g(mu_);
    last_beat_ = clock::now();
    expiry_ = expiry;
    if (doubt_ && sent >= doubt_since_) doubt_ = false;
  }
  /// The cluster actor starts (or rejoins): no gap before this.
  void reset_tick() {
    std::lock_guard<std::mutex> g(mu_);
    last_tick_ = clock::now();
    doubt_ = false;
  }
  /// Whether the last heartbeat failed because the store is unreachable.
  void set_store_down(bool down) {
    std::lock_guard<std::mutex> g(mu_);
    store_down_ = down;
  }
  bool store_down() const {
    std::lock_guard<std::mutex> g(mu_);
    return store_down_;
  }
  /// The cluster actor's ping timer ran. A gap longer than `window` (the
  /// time peers take to suspect a node) means this process stood still long
  /// enough to be declared dead: it doubts until a heartbeat sent from now
  /// on succeeds. True when this tick started a doubt.
  bool tick(std::chrono::milliseconds window) {
    std::lock_guard<std::mutex> g(mu_);
    const auto now = clock::now();
    window_ = window;
    const bool gap = now - last_tick_ > window;
    last_tick_ = now;
    if (gap && !doubt_) {
      doubt_ = true;
      doubt_since_ = now;
      return true;
    }
    return false;
  }

  /// Who this node is when it asks for a lease.
  runtime::claimant claimant(const std::string& node) const {
    std::lock_guard<std::mutex> g(mu_);
    return {node, incarnation_, std::vector<std::string>(dead_.begin(), dead_.end())};
  }
  void set_dead(std::set<std::string> dead) {
    std::lock_guard<std::mutex> g(mu_);
    dead_ = std::move(dead);
  }
  void add_dead(const std::string& inc) {
    std::lock_guard<std::mutex> g(mu_);
    dead_.insert(inc);
  }
  bool is_dead(const std::string& inc) const {
    std::lock_guard<std::mutex> g(mu_);
    return dead_.count(inc) > 0;
  }

  /// Peers the cluster actor is connected to and hears from (by name).
  void set_reachable(std::set<std::string> peers) {
    std::lock_guard<std::mutex> g(mu_);
    reachable_ = std::move(peers);
  }
  bool reachable(const std::string& peer) const {
    std::lock_guard<std::mutex> g(mu_);
    return reachable_.count(peer) > 0;
  }

  /// The nodes a session may be placed on now: the active members the
  /// cluster actor reaches, with their capacities (this node among them
  /// while it is active and not draining).
  void set_candidates(std::vector<runtime::placement_candidate> c) {
    std::lock_guard<std::mutex> g(mu_);
    candidates_ = std::move(c);
  }
  /// Where `session` goes (runtime/placement.hpp); "" when there is no
  /// candidate. While this node drains it never picks itself.
  std::string place(const std::string& session, const std::string& self) const {
    std::lock_guard<std::mutex> g(mu_);
    if (!draining_) return runtime::rendezvous(candidates_, session);
    std::vector<runtime::placement_candidate> others;
    for (const auto& c : candidates_)
      if (c.node != self) others.push_back(c);
    return runtime::rendezvous(others, session);
  }

  /// Like place, among the candidates other than `self` ("" for none).
  std::string place_elsewhere(const std::string& key, const std::string& self) const {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<runtime::placement_candidate> others;
    for (const auto& c : candidates_)
      if (c.node != self) others.push_back(c);
    return runtime::rendezvous(others, key);
  }

  /// Members that drain now (their sessions come free in a moment).
  void set_leaving(std::set<std::string> names) {
    std::lock_guard<std::mutex> g(mu_);
    leaving_ = std::move(names);
  }
  bool leaving(const std::string& node) const {
    std::lock_guard<std::mutex> g(mu_);
    return leaving_.count(node) > 0;
  }

  /// This node drains (SIGTERM, `cluster drain`): no new placements here.
  void set_draining() {
    std::lock_guard<std::mutex> g(mu_);
    draining_ = true;
  }
  bool draining() const {
    std::lock_guard<std::mutex> g(mu_);
    return draining_;
  }
  /// The members' scaling figures from the last table read (heartbeats at
  /// most a heartbeat period old); the supervisor evaluates the replica
  /// signal on them (docs/scaling.md).
  void set_loads(std::vector<runtime::member_load> loads) {
    std::lock_guard<std::mutex> g(mu_);
    loads_ = std::move(loads);
  }
  std::vector<runtime::member_load> loads() const {
    std::lock_guard<std::mutex> g(mu_);
    return loads_;
  }
  /// The members as of the last table read (the dashboard's sampler shows
  /// them; heartbeat ages as of `read_at`).
  void set_members(std::vector<runtime::dash_node> m) {
    std::lock_guard<std::mutex> g(mu_);
    members_ = std::move(m);
    members_at_ = clock::now();
    members_seen_ = true;
  }
  /// `seen`: whether any table was read yet.
  std::vector<runtime::dash_node> members(clock_point* read_at = nullptr, bool* seen = nullptr) const {
    std::lock_guard<std::mutex> g(mu_);
    if (read_at) *read_at = members_at_;
    if (seen) *seen = members_seen_;
    return members_;
  }
  /// Requests this node forwards to peers and has not seen answered.
  void set_forwards(size_t n) {
    std::lock_guard<std::mutex> g(mu_);
    forwards_ = n;
  }
  size_t forwards() const {
    std::lock_guard<std::mutex> g(mu_);
    return forwards_;
  }

 private:
  const bool enabled_ = false;
  const std::string cluster_;
  mutable std::mutex mu_;
  std::string incarnation_;
  bool serving_ = true;
  clock_point last_beat_ = clock::now();
  std::chrono::milliseconds expiry_{3000};
  clock_point last_tick_ = clock::now();
  std::chrono::milliseconds window_{0};  // 0 until the first tick
  bool doubt_ = false;
  clock_point doubt_since_;
  bool store_down_ = false;
  std::set<std::string> dead_;
  std::set<std::string> reachable_;
  std::vector<runtime::placement_candidate> candidates_;
  std::set<std::string> leaving_;
  bool draining_ = false;
  size_t forwards_ = 0;
  std::vector<runtime::member_load> loads_;
  std::vector<runtime::dash_node> members_;
  clock_point members_at_ = clock::now();
  bool members_seen_ = false;
};

}  // namespace brigade::actors
