// The replica signal (runtime/scaling.hpp) on load traces: each test drives
// real load_meters (arrivals, queue samples, engine steps, finished turns)
// through simulated time and evaluates the controller once per interval, as
// a node's supervisor does, and asserts one property of docs/scaling.md.
#include "runtime/scaling.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <functional>
#include <random>
#include <vector>

namespace brigade::runtime {
namespace {

constexpr double prompt = 100, generated = 50;  // tokens per turn
constexpr int max_batch = 16;

/// A node whose engine steps take a + c*n seconds for n tokens.
struct sim_node {
  std::string name;
  double a, c;
  load_meter meter;
  double pending = 0;  // fractional arrivals carried to the next second

  sim_node(std::string n, double a_s, double c_s, double window_s = 5)
      : name(std::move(n)), a(a_s), c(c_s), meter(load_meter::options{max_batch, window_s}) {
    // Warm the step model with steps of the sizes a loaded engine runs
    // (decode batches and prefill chunks), and the turn mix.
    for (int i = 0; i < 400; ++i) {
      const double n_tokens = 1 + (i * 37) % 300;
      meter.step(n_tokens, a + c * n_tokens);
    }
    for (int i = 0; i < 300; ++i) meter.turn_done(prompt, generated);
    meter.kv(0, 100000);
  }
  /// The node's capacity as the formula sees it: turns/s at full batch.
  double capacity() const {
    const double per_turn = c * (prompt + generated) + a * generated / max_batch;
    return 1 / per_turn;
  }
  /// One simulated second [t, t+1) at `rate` turns/s.
  void second(double t, double rate, double queue = 0) {
    pending += rate;
    const int k = static_cast<int>(pending);
    pending -= k;
    for (int i = 0; i < k; ++i) meter.arrival(t + (i + 0.5) / k);
    meter.queue_sample(t + 0.5, queue);
  }
  member_load load(double now) const { return {name, "active", meter.figures(now)}; }
};

scaling_params params() {
  scaling_params p;
  p.ttft_target_s = 1;
  p.min_replicas = 1;
  p.max_replicas = 64;
  p.interval_s = 5;
  p.down_window_s = 300;
  return p;
}

/// Runs `seconds` of load: `rate(t)` turns/s spread evenly over the nodes;
/// evaluates every interval; returns the desired count at each evaluation.
struct trace_run {
  std::vector<double> t;
  std::vector<int> desired;
  int changes = 0;
};
trace_run run(std::deque<sim_node>& nodes, replica_controller& ctl, double from, double seconds,
              const std::function<double(double)>& rate) {
  trace_run out;
  const double interval = ctl.params().interval_s;
  for (double t = from; t < from + seconds; t += 1) {
    const double r = rate(t) / static_cast<double>(nodes.size());
    for (auto& n : nodes) n.second(t, r);
    const double now = t + 1;
    if (std::fmod(now, interval) == 0) {
      std::vector<member_load> loads;
      for (const auto& n : nodes) loads.push_back(n.load(now));
      const auto d = ctl.evaluate(loads, now);
      out.t.push_back(now);
      out.desired.push_back(d.desired);
      if (d.changed && out.desired.size() > 1) ++out.changes;
    }
  }
  return out;
}

int needs(double rate, double capacity, double util) { return static_cast<int>(std::ceil(rate / (util * capacity) - 1e-6)); }

TEST(StepModel, RecoversTheFixedAndPerTokenCost) {
  step_model m;
  for (int i = 0; i < 500; ++i) {
    const double n = 1 + i % 64;
    m.observe(n, 0.020 + 0.0005 * n);
  }
  ASSERT_TRUE(m.measured());
  EXPECT_NEAR(m.fixed_seconds(), 0.020, 1e-6);
  EXPECT_NEAR(m.per_token_seconds(), 0.0005, 1e-8);
  // 16 decoding together: a turn of 100 + 50 tokens costs 0.0005*150 + 0.02*50/16.
  EXPECT_NEAR(m.turns_per_second(16, 100, 50), 1 / (0.075 + 0.0625), 1e-6);
}

TEST(StepModel, WithoutSpreadAssumesNoBatchingGain) {
  step_model m;
  for (int i = 0; i < 100; ++i) m.observe(1, 0.010);  // batch 1 decode only
  ASSERT_TRUE(m.measured());
  EXPECT_EQ(m.fixed_seconds(), 0);
  EXPECT_NEAR(m.per_token_seconds(), 0.010, 1e-9);
  EXPECT_NEAR(m.turns_per_second(64, 0, 10), 1 / 0.1, 1e-6);  // capacity = what it ran
  step_model fresh;
  EXPECT_FALSE(fresh.measured());
  EXPECT_EQ(fresh.turns_per_second(64, 10, 10), 0);
}

TEST(LoadMeter, RatesQueueAndKv) {
  load_meter m(load_meter::options{16, 5});
  for (int s = 0; s < 20; ++s)
    for (int k = 0; k < 8; ++k) m.arrival(s + k / 8.0);
  for (int s = 15; s < 20; ++s) m.queue_sample(s + 0.5, 4);
  m.kv(1200, 4000);
  m.in_flight(300, 120);
  const auto f = m.figures(20);
  EXPECT_EQ(f.prompt_tokens_in_flight, 300);
  EXPECT_EQ(f.generated_tokens_in_flight, 120);
  EXPECT_NEAR(f.arrivals, 8, 1e-9);
  EXPECT_NEAR(f.queue_depth, 4, 1e-9);
  EXPECT_EQ(f.capacity, 0);  // no steps yet: not measured
  EXPECT_EQ(f.kv_wanted_tokens, 1200);
  EXPECT_NEAR(load_ratio(f, 1), 0.3, 1e-9);  // only the KV dimension is measured
  // Silence: the rate falls to 0 within the window; the queue holds its last sample.
  const auto later = m.figures(40);
  EXPECT_EQ(later.arrivals, 0);
  EXPECT_NEAR(later.queue_depth, 4, 1e-9);
}

// A burst: desired reaches ceil(demand / capacity) within two evaluations.
TEST(ReplicaSignal, BurstReachesTheNeedWithinTwoEvaluations) {
  for (double phase : {0.0, 1.0, 2.0, 3.0, 4.0}) {  // the burst starts anywhere within an interval
    std::deque<sim_node> nodes;
    nodes.emplace_back("n0", 0.02, 0.0005);
    const double mu = nodes[0].capacity();
    replica_controller ctl(params());
    run(nodes, ctl, 0, 600, [&](double) { return 0.5 * mu; });
    ASSERT_EQ(ctl.desired(), 1);
    const double burst = 9.3 * mu;
    const double start = 600 + phase;
    const auto r = run(nodes, ctl, 600, 60, [&](double t) { return t < start ? 0.5 * mu : burst; });
    int reached_at = -1;
    for (size_t i = 0; i < r.t.size(); ++i)
      if (r.t[i] > start && r.desired[i] >= needs(burst, mu, 0.7)) {
        reached_at = static_cast<int>(i);
        break;
      }
    ASSERT_GE(reached_at, 0) << "phase " << phase;
    int evaluations_after = 0;
    for (size_t i = 0; i <= static_cast<size_t>(reached_at); ++i)
      if (r.t[i] > start) ++evaluations_after;
    EXPECT_LE(evaluations_after, 2) << "phase " << phase;
    EXPECT_EQ(r.desired.back(), needs(burst, mu, 0.7)) << "no queue: exactly what the demand needs";
  }
}

// A ramp: monotone, never more than one above what the demand needs.
TEST(ReplicaSignal, RampIsMonotoneAndNeverMoreThanOneAbove) {
  std::deque<sim_node> nodes;  // one node stands for any number of equal ones: E does not depend on it
  nodes.emplace_back("n0", 0.02, 0.0005);
  const double mu = nodes[0].capacity();
  replica_controller ctl(params());
  auto rate = [&](double t) { return mu * 20 * t / 3600; };  // 0 to 20 nodes' capacity in an hour
  const auto r = run(nodes, ctl, 0, 3600, rate);
  for (size_t i = 1; i < r.desired.size(); ++i) {
    EXPECT_GE(r.desired[i], r.desired[i - 1]) << "at t=" << r.t[i];
    EXPECT_LE(r.desired[i], std::max(1, needs(rate(r.t[i]), mu, 0.7)) + 1) << "at t=" << r.t[i];
  }
  // It lags by at most the tolerance (up only past E > d * 1.1).
  EXPECT_GE(r.desired.back() * 1.1, rate(3600) / (0.7 * mu) - 0.2);
}

// A drop to zero: min-replicas only after the down window.
TEST(ReplicaSignal, DropToZeroReachesMinOnlyAfterTheDownWindow) {
  std::deque<sim_node> nodes;
  nodes.emplace_back("n0", 0.02, 0.0005);
  const double mu = nodes[0].capacity();
  auto p = params();
  p.min_replicas = 2;
  replica_controller ctl(p);
  run(nodes, ctl, 0, 900, [&](double) { return 6 * mu; });
  const int high = ctl.desired();
  ASSERT_EQ(high, needs(6 * mu, mu, 0.7));
  const auto r = run(nodes, ctl, 900, 900, [](double) { return 0.0; });
  for (size_t i = 0; i < r.t.size(); ++i) {
    if (r.t[i] < 900 + p.down_window_s) {
      EXPECT_EQ(r.desired[i], high) << "at t=" << r.t[i];
    }
    if (r.t[i] >= 900 + p.down_window_s + 2 * p.interval_s) {
      EXPECT_EQ(r.desired[i], 2) << "at t=" << r.t[i];
    }
  }
}

// A load oscillating +-10% around any level: no change over an hour.
TEST(ReplicaSignal, SteadyLoadPlusMinusTenPercentNeverChanges) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> noise(-0.1, 0.1);
  int levels = 0;
  for (double level = 0.3; level <= 14; level += 0.17) {
    for (int shape = 0; shape < 4; ++shape) {
      std::deque<sim_node> nodes;
      nodes.emplace_back("n0", 0.02, 0.0005);
      const double mu = nodes[0].capacity();
      const double base = level * 0.7 * mu;  // `level` nodes' worth at the target utilisation
      replica_controller ctl(params());
      run(nodes, ctl, 0, 900, [&](double) { return base; });  // settles on the steady level
      const int settled = ctl.desired();
      const double period = shape == 0 ? 60 : shape == 1 ? 600 : 3600;
      const auto r = run(nodes, ctl, 900, 3600, [&](double t) {
        if (shape == 3) return base * (1 + noise(rng));
        return base * (1 + 0.1 * std::sin(2 * M_PI * t / period));
      });
      EXPECT_EQ(r.changes, 0) << "level " << level << " shape " << shape;
      EXPECT_EQ(ctl.desired(), settled);
      ++levels;
    }
  }
  EXPECT_GT(levels, 300);
}

// One node much slower than the others: counted at its measured capacity.
TEST(ReplicaSignal, SlowNodeCountsAtItsMeasuredCapacity) {
  std::deque<sim_node> nodes;
  nodes.emplace_back("fast0", 0.02, 0.0005);
  nodes.emplace_back("fast1", 0.02, 0.0005);
  nodes.emplace_back("slow", 0.10, 0.0025);  // five times slower
  const double mu = nodes[0].capacity(), slow = nodes[2].capacity();
  std::vector<member_load> loads;
  for (const auto& n : nodes) loads.push_back(n.load(0));
  EXPECT_NEAR(loads[2].f.capacity, slow, slow * 1e-6);
  EXPECT_NEAR(loads[0].f.capacity, mu, mu * 1e-6);
  // Demand worth 2.8 fast nodes at the target: three nodes of which one is
  // slow hold 2.2 fast nodes' worth, so a fourth is needed; had the slow
  // one been counted as typical, three would do.
  const double demand = 2.8 * 0.7 * mu;
  for (auto& l : loads) l.f.arrivals = demand / 3;
  const auto need = need_of(loads, 0.7, 0.8, 1);
  EXPECT_NEAR(need.tokens, 3 + (2.8 * mu - (2 * mu + slow)) / mu, 1e-6);
  replica_controller ctl(params());
  EXPECT_EQ(ctl.evaluate(loads, 5).desired, 4);
  auto typical = loads;
  typical[2].f.capacity = mu;
  replica_controller ctl2(params());
  EXPECT_EQ(ctl2.evaluate(typical, 5).desired, 3);
}

// Many idle resident sessions: the memory dimension decides.
TEST(ReplicaSignal, IdleResidentSessionsMakeMemoryDecide) {
  std::deque<sim_node> nodes;
  nodes.emplace_back("n0", 0.02, 0.0005);
  nodes.emplace_back("n1", 0.02, 0.0005);
  for (auto& n : nodes) n.meter.kv(175000, 100000);  // sessions want 1.75x the KV each node holds
  replica_controller ctl(params());
  const auto r = run(nodes, ctl, 0, 60, [](double) { return 0.1; });  // almost no turns
  std::vector<member_load> loads;
  for (const auto& n : nodes) loads.push_back(n.load(60));
  const auto need = need_of(loads, 0.7, 0.8, 1);
  EXPECT_LT(need.tokens, 1);
  EXPECT_NEAR(need.memory, 350000 / 0.8 / 100000, 1e-6);
  EXPECT_EQ(r.desired.back(), 5);  // ceil(4.375)
  EXPECT_NEAR(load_ratio(loads[0].f, 1), 1.75, 1e-9);
}

TEST(ReplicaSignal, WithoutMeasurementsHoldsTheServingCount) {
  std::vector<member_load> loads(3);
  for (int i = 0; i < 3; ++i) {
    loads[i].name = "n" + std::to_string(i);
    loads[i].state = "active";
    loads[i].f.arrivals = 50;  // demand, but no engine step measured yet
  }
  replica_controller ctl(params());
  for (int k = 1; k <= 100; ++k) {
    const auto d = ctl.evaluate(loads, 5.0 * k);
    EXPECT_EQ(d.desired, 3);
    EXPECT_FALSE(d.need.measured);
  }
  // A member that has measured: the others count as typical nodes like it.
  loads[0].f.capacity = 10;
  const auto d = ctl.evaluate(loads, 505);
  EXPECT_TRUE(d.need.measured);
  EXPECT_EQ(d.desired, needs(150, 10, 0.7));
}

TEST(ReplicaSignal, StaysWithinTheBoundsAndIgnoresDeadMembers) {
  auto p = params();
  p.min_replicas = 2;
  p.max_replicas = 5;
  replica_controller ctl(p);
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> rate(0, 200);
  for (int k = 1; k <= 2000; ++k) {
    std::vector<member_load> loads{{"a", "active", {}}, {"b", "draining", {}}, {"c", "dead", {}}};
    loads[0].f.arrivals = rate(rng);
    loads[0].f.capacity = 10;
    loads[1].f.capacity = 10;
    loads[2].f.arrivals = 1e6;  // a dead member's figures mean nothing
    loads[2].f.capacity = 10;
    const auto d = ctl.evaluate(loads, 5.0 * k);
    EXPECT_GE(d.desired, 2);
    EXPECT_LE(d.desired, 5);
    EXPECT_EQ(d.need.serving, 1);  // draining and dead members serve no new work
  }
}

}  // namespace
}  // namespace brigade::runtime
