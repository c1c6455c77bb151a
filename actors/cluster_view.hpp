// What a node's actors need to know about the cluster, shared and
// thread-safe: this process's incarnation, whether it may serve (not while
// declared dead), the incarnations declared dead (their leases are void),
// and which peers the cluster actor reaches now (for forwarding). The
// cluster actor (actors/cluster.hpp) writes it; sessions and the supervisor
// read it. Outside a cluster it stays disabled: no incarnation, always
// serving, nobody dead.
#pragma once

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "runtime/store.hpp"

namespace brigade::actors {

class cluster_view {
 public:
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

  /// False from the moment this node learns it was declared dead until it
  /// has rejoined: it serves no session meanwhile.
  bool serving() const {
    std::lock_guard<std::mutex> g(mu_);
    return serving_;
  }
  void set_serving(bool s) {
    std::lock_guard<std::mutex> g(mu_);
    serving_ = s;
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

 private:
  const bool enabled_ = false;
  const std::string cluster_;
  mutable std::mutex mu_;
  std::string incarnation_;
  bool serving_ = true;
  std::set<std::string> dead_;
  std::set<std::string> reachable_;
};

}  // namespace brigade::actors
