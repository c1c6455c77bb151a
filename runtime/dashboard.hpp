// What the live dashboard shows (docs/dashboards.md): the cluster
// as this node sees it, recent supervisor events and the charts' history,
// all in memory and bounded. A sampler (actors/node.cpp) calls `update` once
// a second with the members' node objects (this node's from its own metrics,
// the others' from the membership table, at most a heartbeat old); the HTTP
// endpoint (runtime/metrics.hpp) answers from the last sample, so a page
// never waits for the store or an actor.
//
// Events come from two sides: this node's actors report what they did
// (`add_event`: a session restarted, taken over, handed over) and `update`
// derives the rest by comparing samples: members joining, becoming active,
// draining, dead, leaving, and other members' restarts and takeovers (their
// heartbeat counters grew).
//
// Thread-safe: one mutex; every call is short (no I/O under the lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace brigade::runtime {

/// One member, as the node object of docs/cli.md: identity and the figures
/// of its heartbeat (sessions, queue_depth, tokens_per_second, ...).
struct dash_node {
  std::string name;
  std::string address;
  std::string state;  // joining | active | draining | dead
  std::string model;
  uint32_t version = 0;
  double capacity = 1;
  double heartbeat_age_seconds = 0;
  std::map<std::string, double> figures;
  double figure(const std::string& key) const;  // 0 when absent
};

/// The cluster at one moment. `cluster` is "" for a single node on the
/// memory store (no cluster).
struct dash_snapshot {
  std::string cluster;
  std::string self;  // the node that took it
  double time = 0;   // unix seconds
  std::vector<dash_node> nodes;  // by name
  /// False while a cluster node has not read the membership table yet (it
  /// knows only itself): such a snapshot is shown, but the first complete
  /// one is the baseline events are derived from, so members that were
  /// there all along do not "join".
  bool complete = true;
  /// The replica signal: the largest of the live members' (0: none yet).
  double desired_replicas() const;
};

struct dash_event {
  double time = 0;  // unix seconds
  std::string node;     // the node it happened on
  std::string kind;     // session_restart | failover | handoff | joined | active | draining | dead | left
  std::string session;  // "" for a node's event
  std::string detail;
};

/// The node object's figures charted over time (docs/cli.md /api/v1/series).
extern const char* const dash_series_names[];
extern const size_t dash_series_count;

class dashboard {
 public:
  /// `history`: points kept per series (one per sample: 600 = 10 minutes);
  /// `max_events`: events kept.
  explicit dashboard(size_t history = 600, size_t max_events = 512);

  /// A new sample. Appends a point to each node's series, derives events
  /// from the change since the last sample, and forgets nodes whose whole
  /// history has aged out.
  void update(dash_snapshot s);
  void add_event(dash_event e);

  dash_snapshot snapshot() const;
  std::vector<dash_event> events(double since = 0) const;  // time > since, oldest first

  /// The documented JSON bodies (docs/operations.md).
  std::string cluster_json() const;
  std::string events_json(double since = 0) const;
  /// The last `seconds` of every series (clamped to the history kept).
  std::string series_json(double seconds) const;

  size_t history() const { return history_; }

 private:
  struct point {
    double t, v;
  };
  void derive_events(const dash_snapshot& before, const dash_snapshot& now);
  void push_event(dash_event e);

  const size_t history_;
  const size_t max_events_;
  mutable std::mutex mu_;
  dash_snapshot last_;
  bool have_last_ = false;
  dash_snapshot baseline_;  // the last complete snapshot
  bool have_baseline_ = false;
  std::deque<dash_event> events_;
  // node -> series index -> points, oldest first
  std::map<std::string, std::vector<std::deque<point>>> series_;
};

/// The node object as JSON (docs/cli.md), shared by `cluster status --json`,
/// /api/v1/cluster and the page.
std::string node_object_json(const dash_node& n);
/// {"cluster": NAME or null, "desired_replicas": N or null, "nodes": [...]},
/// with "self" and "time" (unix seconds) when `with_origin`.
std::string cluster_status_json(const dash_snapshot& s, bool with_origin);

}  // namespace brigade::runtime
