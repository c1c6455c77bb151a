// Cluster-wide scaling (docs/scaling.md): what a node measures of its own
// demand and capacity (load_meter, with the engine's step_model), and the
// formula that turns the members' figures into the number of nodes the
// cluster needs (replica_controller).
//
// Plain C++ on numbers and times the caller gives (seconds on any steady
// clock; nothing here reads a clock), so the unit tests and `brigade scaling
// simulate` run exactly the code the nodes run. load_meter is thread-safe
// (the engine thread feeds it, the heartbeat reads it); step_model and
// replica_controller are not (one owner each).
//
// The formula, in node-equivalents (docs/scaling.md):
//   need     = sum_i arrivals_i / util + sum_i queue_i / ttft_target   [turns/s]
//   tokens   = n + (need - sum_serving capacity_i) / median capacity
//   memory   = n + (sum_i kv_wanted_i / kv_util - sum_serving kv_capacity_i) / median kv_capacity
//   E        = max(tokens, memory)
// with n the serving members (active or joining). Up, at once, when E is
// more than `tolerance` above the current count d: to ceil(E). Down only
// when every ceil(E * (1 + tolerance) / (1 - tolerance)) of the last down
// window is below d: to the largest of them. So a load that moves by
// +-tolerance around a level it settled on never changes the count. Always
// within [min_replicas, max_replicas].
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace brigade::runtime {

/// Engine step time as an affine function of the tokens fed in one step,
/// t(n) = a + c*n (a: what a step costs whatever its size, the weights'
/// pass; c: each token's share), fitted by least squares with exponential
/// forgetting: each step's weight decays by `forget` per later step, so the
/// fit follows the engine's recent steps (about 1/(1-forget) of them).
class step_model {
 public:
  explicit step_model(double forget = 0.998);
  void observe(double tokens, double seconds);
  /// Enough steps seen to estimate (32).
  bool measured() const { return steps_ >= 32; }
  double fixed_seconds() const;      // a >= 0
  double per_token_seconds() const;  // c >= 0
  /// Turns per second at `batch` sequences decoding together, for turns of
  /// `prompt` prefilled and `generated` tokens: a turn costs c*(prompt +
  /// generated) of engine time plus its share a*generated/batch of the
  /// steps it decodes in. 0 until measured.
  double turns_per_second(double batch, double prompt, double generated) const;

 private:
  void fit() const;
  double forget_;
  double w_ = 0, sn_ = 0, st_ = 0, snn_ = 0, snt_ = 0;  // weighted sums of 1, n, t, n*n, n*t
  int64_t steps_ = 0;
  mutable bool fitted_ = false;
  mutable double a_ = 0, c_ = 0;
};

/// One node's scaling figures, as its heartbeat carries them (the node
/// object's `scale_*` fields, docs/cli.md).
struct load_figures {
  double arrivals = 0;          // turns/s reaching the engine (queued or refused), over the window
  double queue_depth = 0;       // turns waiting for the engine, mean over the window
  double capacity = 0;          // turns/s it can serve at full batch for its turn mix; 0: not measured yet
  double prompt_tokens = 0;     // per turn, prefilled (after KV reuse), recent mean
  double generated_tokens = 0;  // per turn, recent mean
  double prompt_tokens_in_flight = 0;     // still to prefill: waiting turns and those prefilling now
  double generated_tokens_in_flight = 0;  // still allowed to generate: running turns' remaining max_tokens
  double kv_wanted_tokens = 0;  // KV its live sessions want resident (resident + evicted)
  double kv_capacity_tokens = 0;  // KV it can hold (--kv-memory)
};

/// demand over capacity, the larger of the two dimensions:
/// max((arrivals + queue/ttft_target) / capacity, kv_wanted / kv_capacity);
/// 0 for a dimension without a measurement.
double load_ratio(const load_figures& f, double ttft_target_s);

/// What a node measures of itself. The engine's loop reports arrivals,
/// queue depth, steps and finished turns; figures() reads them.
class load_meter {
 public:
  struct options {
    int max_batch = 64;     // the batch size capacity is evaluated at
    double window_s = 5;    // the rate and queue window (a node uses its scale-interval)
  };
  explicit load_meter(options opt);
  load_meter() : load_meter(options{}) {}
  /// New options (at start, before the figures mean anything: the window restarts).
  void reshape(options opt);

  void arrival(double now_s);  // a turn reached the engine (queued or refused)
  void queue_sample(double now_s, double depth);
  void step(double tokens, double seconds);
  void turn_done(double prompt_tokens, double generated_tokens);
  void kv(double wanted_tokens, double capacity_tokens);
  void in_flight(double prompt_tokens, double generated_tokens);

  load_figures figures(double now_s) const;

 private:
  struct bucket {
    int64_t second = -1;
    double arrivals = 0;
    double queue_sum = 0;
    int64_t queue_n = 0;
  };
  bucket& at(double now_s);
  options opt_;
  mutable std::mutex mu_;
  std::vector<bucket> ring_;
  double started_s_ = -1;
  double last_queue_ = 0;
  step_model steps_;
  double prompt_mean_ = 0, generated_mean_ = 0;
  int64_t turns_ = 0;
  double kv_wanted_ = 0, kv_capacity_ = 0;
  double prompt_in_flight_ = 0, generated_in_flight_ = 0;
};

struct scaling_params {
  double ttft_target_s = 1;  // --ttft-target
  int min_replicas = 1;      // --min-replicas (>= 1: the signal comes from the nodes)
  int max_replicas = 16;     // --max-replicas
  double interval_s = 5;     // --scale-interval: one evaluation per interval
  double down_window_s = 300;  // --scale-down-window
  // The backlog term drains the waiting turns within max(ttft_target,
  // backlog_horizon_s) (bench/scaling_sim.py measures the choice).
  double backlog_horizon_s = 0;
  double util_target = 0.7;  // of the engine's capacity at full batch: headroom for bursts until new nodes serve
  double kv_target = 0.8;    // of KV memory: resident sessions against --kv-memory
  // The band: up past E > d*(1 + tolerance), down below; a load moving by
  // +-tolerance changes nothing (docs/scaling.md proves it).
  double tolerance = 0.1;
};

/// One member as the controller sees it: its state in the table and its figures.
struct member_load {
  std::string name;
  std::string state;  // joining | active | draining | dead (dead ones are ignored)
  load_figures f;
};

/// Node-equivalents (E) the members' load needs at token utilisation
/// `util` and KV utilisation `kv_util`, per dimension. `measured`: some serving member
/// has a capacity (otherwise `tokens` is 0 and means nothing).
struct node_need {
  double tokens = 0, memory = 0;
  bool measured = false;
  int serving = 0;  // active or joining members
  double max() const { return tokens > memory ? tokens : memory; }
};
node_need need_of(const std::vector<member_load>& members, double util, double kv_util, double backlog_s);

struct scaling_decision {
  int desired = 0;
  int previous = 0;
  bool changed = false;
  const char* reason = "hold";  // up | down | hold | hold: not measured | first | bounds
  node_need need;          // E at the target utilisations
  int down_candidate = 0;  // the largest down count in the window
};

/// The stateful part: the current desired count and the down window.
class replica_controller {
 public:
  explicit replica_controller(scaling_params p);
  const scaling_params& params() const { return p_; }
  /// One evaluation at `now_s` (the caller calls it once per interval).
  /// The first one starts at the serving count (within the bounds) and
  /// starts the down window.
  scaling_decision evaluate(const std::vector<member_load>& members, double now_s);
  int desired() const { return desired_; }  // 0 before the first evaluation

 private:
  int clamp(int n) const;
  scaling_params p_;
  int desired_ = 0;
  double first_s_ = 0;
  std::deque<std::pair<double, int>> window_;  // (time, down candidate)
};

}  // namespace brigade::runtime
