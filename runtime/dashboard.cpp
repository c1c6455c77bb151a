#include "runtime/dashboard.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace brigade::runtime {

using ojson = nlohmann::ordered_json;

const char* const dash_series_names[] = {"tokens_per_second", "ttft_p50_seconds",  "ttft_p99_seconds",
                                         "queue_depth",       "mean_batch_size",   "engine_busy_ratio",
                                         "kv_cache_usage_ratio", "sessions"};
const size_t dash_series_count = sizeof dash_series_names / sizeof dash_series_names[0];

double dash_node::figure(const std::string& key) const {
  auto it = figures.find(key);
  return it == figures.end() || !std::isfinite(it->second) ? 0.0 : it->second;
}

double dash_snapshot::desired_replicas() const {
  double d = 0;
  for (const auto& n : nodes)
    if (n.state != "dead") d = std::max(d, n.figure("desired_replicas"));
  return d;
}

namespace {
/// Five significant digits: the charts need no more, and the series' JSON
/// stays small (a first paint carries 10 minutes of every series).
double round5(double v) {
  if (!std::isfinite(v)) return 0;
  if (v == 0) return 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5g", v);
  return std::strtod(buf, nullptr);
}
double round_ms(double t) { return std::round(t * 1000.0) / 1000.0; }

std::string plural(double n, const char* what) {
  const long k = std::lround(n);
  return std::to_string(k) + " " + what + (k == 1 ? "" : "s");
}
}  // namespace

dashboard::dashboard(size_t history, size_t max_events)
    : history_(std::max<size_t>(history, 2)), max_events_(std::max<size_t>(max_events, 1)) {}

void dashboard::push_event(dash_event e) {
  events_.push_back(std::move(e));
  while (events_.size() > max_events_) events_.pop_front();
}

void dashboard::add_event(dash_event e) {
  std::lock_guard<std::mutex> g(mu_);
  push_event(std::move(e));
}

void dashboard::derive_events(const dash_snapshot& before, const dash_snapshot& now) {
  std::map<std::string, const dash_node*> old;
  for (const auto& n : before.nodes) old[n.name] = &n;
  auto ev = [&](const std::string& node, const char* kind, std::string detail) {
    push_event({now.time, node, kind, "", std::move(detail)});
  };
  for (const auto& n : now.nodes) {
    auto it = old.find(n.name);
    if (it == old.end()) {
      if (n.state != "dead") ev(n.name, "joined", "joined the cluster (" + n.state + ", at " + n.address + ")");
      continue;
    }
    const dash_node& o = *it->second;
    old.erase(it);
    if (o.state != n.state) {
      if (n.state == "active")
        ev(n.name, "active", o.state == "joining" ? "became active (a majority of the members reach it)"
                                                  : "is active again (was " + o.state + ")");
      else if (n.state == "draining")
        ev(n.name, "draining", "drains: no new sessions; its sessions hand over to the others");
      else if (n.state == "dead")
        ev(n.name, "dead", "declared dead (no heartbeat for " + std::to_string(std::lround(n.heartbeat_age_seconds)) +
                               " s, or a majority could not reach it); its sessions fail over");
      else if (n.state == "joining")
        ev(n.name, "joined", "joins again (was " + o.state + ")");
    }
    // Other members' own events show as their heartbeat counters growing
    // (this node reports its own, with the session, through add_event). A
    // counter that fell is a restarted process: nothing to report.
    if (n.name == now.self || n.state == "dead") continue;
    auto grew = [&](const char* key) { return n.figure(key) - o.figure(key); };
    if (double k = grew("session_restarts"); k >= 1)
      push_event({now.time, n.name, "session_restart", "", plural(k, "session") + " restarted by its supervisor"});
    if (double k = grew("session_handoffs_failover"); k >= 1)
      push_event({now.time, n.name, "failover", "", "took over " + plural(k, "session") + " from a node declared dead"});
    if (double k = grew("session_handoffs_drain"); k >= 1)
      push_event({now.time, n.name, "handoff", "", "handed " + plural(k, "session") + " over while draining"});
  }
  for (const auto& [name, o] : old)
    if (o->state != "dead") ev(name, "left", "left the cluster");
}

void dashboard::update(dash_snapshot s) {
  std::sort(s.nodes.begin(), s.nodes.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::lock_guard<std::mutex> g(mu_);
  if (!have_last_)
    push_event({s.time, s.self, "started", "", s.cluster.empty() ? "serving as a single node (memory store)"
                                                                  : "serving in cluster " + s.cluster});
  if (s.complete) {
    if (have_baseline_) derive_events(baseline_, s);
    baseline_ = s;
    have_baseline_ = true;
  }
  for (const auto& n : s.nodes) {
    if (n.state == "dead") continue;  // its figures are stale: a gap in its lines
    auto& per = series_[n.name];
    per.resize(dash_series_count);
    for (size_t i = 0; i < dash_series_count; ++i) {
      per[i].push_back({s.time, n.figure(dash_series_names[i])});
      while (per[i].size() > history_) per[i].pop_front();
    }
  }
  const double horizon = s.time - static_cast<double>(history_);
  for (auto it = series_.begin(); it != series_.end();) {
    const bool stale = it->second.empty() || it->second[0].empty() || it->second[0].back().t <= horizon;
    it = stale ? series_.erase(it) : std::next(it);
  }
  last_ = std::move(s);
  have_last_ = true;
}

dash_snapshot dashboard::snapshot() const {
  std::lock_guard<std::mutex> g(mu_);
  return last_;
}

std::vector<dash_event> dashboard::events(double since) const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<dash_event> out;
  for (const auto& e : events_)
    if (e.time > since) out.push_back(e);
  return out;
}

std::string node_object_json(const dash_node& n) {
  ojson o = {{"name", n.name},   {"address", n.address}, {"state", n.state},
             {"model", n.model}, {"version", n.version}, {"capacity", n.capacity}};
  static const char* const figures[] = {"sessions",          "queue_depth",          "tokens_per_second",
                                        "ttft_p50_seconds",  "ttft_p99_seconds",     "mean_batch_size",
                                        "engine_busy_ratio", "kv_cache_usage_ratio", "session_restarts",
                                        "requests_rejected"};
  for (const char* f : figures) o[f] = n.figure(f);
  // The scaling figures (docs/scaling.md): the signal's inputs and this node's view of it.
  static const char* const scaling[] = {"load_ratio",
                                        "desired_replicas",
                                        "scale_arrivals_per_second",
                                        "scale_queue_depth",
                                        "scale_capacity_turns_per_second",
                                        "scale_prompt_tokens_per_turn",
                                        "scale_generated_tokens_per_turn",
                                        "scale_prompt_tokens_in_flight",
                                        "scale_generated_tokens_in_flight",
                                        "scale_kv_wanted_tokens",
                                        "scale_kv_capacity_tokens"};
  for (const char* f : scaling) o[f] = n.figure(f);
  o["heartbeat_age_seconds"] = n.heartbeat_age_seconds;
  return o.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

std::string cluster_status_json(const dash_snapshot& s, bool with_origin) {
  ojson j = {{"cluster", nullptr}, {"desired_replicas", nullptr}};
  if (!s.cluster.empty()) j["cluster"] = s.cluster;
  if (const double d = s.desired_replicas(); d > 0) j["desired_replicas"] = static_cast<int64_t>(d);
  if (with_origin) {
    j["self"] = s.self;
    j["time"] = round_ms(s.time);
  }
  ojson nodes = ojson::array();
  for (const auto& n : s.nodes) nodes.push_back(ojson::parse(node_object_json(n)));
  j["nodes"] = std::move(nodes);
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

std::string dashboard::cluster_json() const { return cluster_status_json(snapshot(), true); }

std::string dashboard::events_json(double since) const {
  ojson arr = ojson::array();
  double now = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    now = last_.time;
    for (const auto& e : events_)
      if (e.time > since)
        arr.push_back({{"time", round_ms(e.time)},
                       {"node", e.node},
                       {"kind", e.kind},
                       {"session", e.session},
                       {"detail", e.detail}});
  }
  ojson j = {{"time", round_ms(now)}, {"events", std::move(arr)}};
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

std::string dashboard::series_json(double seconds) const {
  std::lock_guard<std::mutex> g(mu_);
  const double from = last_.time - std::clamp(seconds, 0.0, static_cast<double>(history_));
  ojson nodes = ojson::object();
  for (const auto& [name, per] : series_) {
    ojson o = ojson::object();
    for (size_t i = 0; i < per.size() && i < dash_series_count; ++i) {
      ojson pts = ojson::array();
      for (const auto& p : per[i])
        if (p.t > from) pts.push_back({round_ms(p.t), round5(p.v)});
      o[dash_series_names[i]] = std::move(pts);
    }
    nodes[name] = std::move(o);
  }
  ojson j = {{"time", round_ms(last_.time)}, {"step_seconds", 1}, {"nodes", std::move(nodes)}};
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace brigade::runtime
