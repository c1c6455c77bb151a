// Node metrics (Prometheus, names in docs/cli.md) and the HTTP endpoint
// serving them with the health checks: GET /metrics, /healthz (the process
// is alive), /readyz (it can admit work: 200, else 503 with the reason), and
// the live dashboard: the page at / and its data at /api/v1/cluster,
// /api/v1/events and /api/v1/series (runtime/dashboard.hpp).
//
// All methods are thread-safe (prometheus-cpp metrics are atomic); actors
// and the engine thread update them directly. Per-device metrics carry a
// `device` label (the configured device: cpu or cuda:N).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "runtime/scaling.hpp"

namespace brigade::runtime {

class dashboard;

/// The scaling figures under their heartbeat names (scale_arrivals, ...), and back.
void put_load_figures(const load_figures& f, std::map<std::string, double>& out);
load_figures get_load_figures(const std::map<std::string, double>& in);

class node_metrics {
 public:
  explicit node_metrics(std::string device = "cpu");
  ~node_metrics();
  node_metrics(const node_metrics&) = delete;
  node_metrics& operator=(const node_metrics&) = delete;

  void set_queue_depth(double v);
  void observe_ttft(double seconds);
  void observe_generation_latency(double seconds);
  void observe_time_per_output_token(double seconds);
  void observe_batch_size(double n);
  void set_engine_busy_ratio(double v);
  void add_tokens_generated(double n);
  void add_prompt_tokens(double n);
  void set_sessions_active(double v);
  void add_rejected(const std::string& reason);
  /// An HTTP API request answered (route: its pattern, "/v1/sessions/{id}").
  void add_http_request(const std::string& route, int code);
  void add_session_restart();
  void set_kv_cache_usage(double ratio);
  void observe_store_latency(double seconds);
  // cluster (docs/cluster.md)
  void set_cluster_nodes(const std::string& state, double n);
  void add_turn_forwarded();
  void add_session_handoff(const std::string& reason);  // failover | drain (counted in figures() too)
  void set_store_up(bool up);
  // scaling (docs/scaling.md): what the engine's loop measures of demand
  // and capacity (a runtime::load_meter inside), and the signal
  void add_turn_arrival();  // a turn reached the engine, queued or refused
  void observe_step(double tokens_fed, double seconds);
  void observe_turn_work(double prompt_tokens, double generated_tokens);  // a turn finished
  void set_kv_demand(double wanted_tokens, double capacity_tokens);
  void set_tokens_in_flight(double prompt_tokens, double generated_tokens);
  void set_scaling_shape(int max_batch, double ttft_target_seconds, double window_seconds);  // at start
  void set_scaling_signal(double desired_replicas, double load_ratio);
  load_figures load() const;  // this node's scaling figures now

  /// The load figures of the node object (docs/cli.md), as of now:
  /// sessions, queue_depth, tokens_generated_total (a counter: the caller
  /// turns it into tokens_per_second), ttft_p50_seconds and ttft_p99_seconds
  /// and mean_batch_size (over the last 512 turns / steps),
  /// engine_busy_ratio, kv_cache_usage_ratio, session_restarts,
  /// requests_rejected, session_handoffs_failover and
  /// session_handoffs_drain, and the scaling figures (scale_*: load_figures)
  /// with load_ratio and desired_replicas.
  std::map<std::string, double> figures() const;

  /// The Prometheus text exposition of every metric.
  std::string serialize() const;

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

/// The HTTP endpoint (civetweb). `ready` returns "" when the node can admit
/// work, else the reason.
class http_endpoint {
 public:
  http_endpoint();
  ~http_endpoint();
  /// Binds host:port (0 = a free port); returns the bound port or 0 with
  /// `error` set. `dash` (may be null: no dashboard routes) must outlive stop().
  int start(const std::string& host, int port, const node_metrics* metrics, const dashboard* dash,
            std::function<std::string()> ready, std::string& error);
  void stop();

  struct impl;  // public so the C callbacks can reach it

 private:
  std::unique_ptr<impl> p_;
};

}  // namespace brigade::runtime
