#include "runtime/scaling.hpp"

#include <algorithm>
#include <cmath>

namespace brigade::runtime {

// -- step_model ------------------------------------------------------------------------

step_model::step_model(double forget) : forget_(forget) {}

void step_model::observe(double tokens, double seconds) {
  if (!(tokens > 0) || !(seconds >= 0) || !std::isfinite(seconds)) return;
  w_ = w_ * forget_ + 1;
  sn_ = sn_ * forget_ + tokens;
  st_ = st_ * forget_ + seconds;
  snn_ = snn_ * forget_ + tokens * tokens;
  snt_ = snt_ * forget_ + tokens * seconds;
  ++steps_;
  fitted_ = false;
}

void step_model::fit() const {
  if (fitted_) return;
  fitted_ = true;
  a_ = c_ = 0;
  if (w_ <= 0) return;
  const double mn = sn_ / w_, mt = st_ / w_;
  const double var = snn_ / w_ - mn * mn;  // of the tokens per step
  const double cov = snt_ / w_ - mn * mt;
  // Without spread in the step sizes the split between a and c is unknown:
  // assume no batching gain (a = 0), which never overstates capacity.
  if (var < 1e-9 * std::max(1.0, mn * mn) || var < 0.25) {
    c_ = mn > 0 ? mt / mn : 0;
    return;
  }
  c_ = cov / var;
  a_ = mt - c_ * mn;
  if (c_ < 0) {  // noise: all of a step's time is fixed
    c_ = 0;
    a_ = mt;
  } else if (a_ < 0) {  // noise: all of it is per token
    a_ = 0;
    c_ = mn > 0 ? mt / mn : 0;
  }
}

double step_model::fixed_seconds() const {
  fit();
  return a_;
}
double step_model::per_token_seconds() const {
  fit();
  return c_;
}

double step_model::turns_per_second(double batch, double prompt, double generated) const {
  if (!measured()) return 0;
  fit();
  const double g = std::max(1.0, generated);
  const double per_turn = c_ * (std::max(0.0, prompt) + g) + a_ * g / std::max(1.0, batch);
  return per_turn > 0 ? 1.0 / per_turn : 0;
}

// -- load_meter ------------------------------------------------------------------------

double load_ratio(const load_figures& f, double ttft_target_s) {
  double r = 0;
  if (f.capacity > 0) r = (f.arrivals + f.queue_depth / std::max(ttft_target_s, 1e-3)) / f.capacity;
  if (f.kv_capacity_tokens > 0) r = std::max(r, f.kv_wanted_tokens / f.kv_capacity_tokens);
  return r;
}

load_meter::load_meter(options opt)
    : opt_(opt), ring_(static_cast<size_t>(std::max(1.0, std::ceil(opt.window_s))) + 1) {}

void load_meter::reshape(options opt) {
  std::lock_guard<std::mutex> g(mu_);
  opt_ = opt;
  ring_.assign(static_cast<size_t>(std::max(1.0, std::ceil(opt.window_s))) + 1, bucket{});
}

load_meter::bucket& load_meter::at(double now_s) {
  if (started_s_ < 0) started_s_ = now_s;
  const auto sec = static_cast<int64_t>(std::floor(now_s));
  bucket& b = ring_[static_cast<size_t>(sec % static_cast<int64_t>(ring_.size()))];
  if (b.second != sec) b = bucket{sec, 0, 0, 0};
  return b;
}

void load_meter::arrival(double now_s) {
  std::lock_guard<std::mutex> g(mu_);
  at(now_s).arrivals += 1;
}

void load_meter::queue_sample(double now_s, double depth) {
  std::lock_guard<std::mutex> g(mu_);
  bucket& b = at(now_s);
  b.queue_sum += depth;
  ++b.queue_n;
  last_queue_ = depth;
}

void load_meter::step(double tokens, double seconds) {
  std::lock_guard<std::mutex> g(mu_);
  steps_.observe(tokens, seconds);
}

void load_meter::turn_done(double prompt_tokens, double generated_tokens) {
  std::lock_guard<std::mutex> g(mu_);
  // A running mean over about the last 256 turns.
  const double w = turns_ < 256 ? 1.0 / static_cast<double>(turns_ + 1) : 1.0 / 256;
  prompt_mean_ += w * (prompt_tokens - prompt_mean_);
  generated_mean_ += w * (generated_tokens - generated_mean_);
  ++turns_;
}

void load_meter::kv(double wanted_tokens, double capacity_tokens) {
  std::lock_guard<std::mutex> g(mu_);
  kv_wanted_ = wanted_tokens;
  kv_capacity_ = capacity_tokens;
}

void load_meter::in_flight(double prompt_tokens, double generated_tokens) {
  std::lock_guard<std::mutex> g(mu_);
  prompt_in_flight_ = prompt_tokens;
  generated_in_flight_ = generated_tokens;
}

load_figures load_meter::figures(double now_s) const {
  std::lock_guard<std::mutex> g(mu_);
  load_figures f;
  const auto now = static_cast<int64_t>(std::floor(now_s));
  const auto seconds = static_cast<int64_t>(ring_.size()) - 1;  // whole seconds before this one
  // The rate over the last `window` whole seconds plus this one so far;
  // a meter younger than the window divides by its age.
  double arrivals = 0, queue = 0;
  int64_t queue_seconds = 0;
  for (const bucket& b : ring_) {
    if (b.second < now - seconds || b.second > now) continue;
    arrivals += b.arrivals;
  }
  double span = static_cast<double>(seconds) + (now_s - static_cast<double>(now));
  if (started_s_ >= 0) span = std::min(span, std::max(1.0, now_s - started_s_));
  f.arrivals = span > 0 ? arrivals / span : 0;
  // The queue: each second's mean sample; a second without samples (an
  // idle engine steps no more) holds the last one.
  for (int64_t s = now - seconds + 1; s <= now; ++s) {
    const bucket& b = ring_[static_cast<size_t>(s % static_cast<int64_t>(ring_.size()))];
    queue += (b.second == s && b.queue_n > 0) ? b.queue_sum / static_cast<double>(b.queue_n) : last_queue_;
    ++queue_seconds;
  }
  f.queue_depth = queue_seconds > 0 ? queue / static_cast<double>(queue_seconds) : last_queue_;
  f.prompt_tokens = prompt_mean_;
  f.generated_tokens = generated_mean_;
  f.capacity = turns_ > 0 ? steps_.turns_per_second(opt_.max_batch, prompt_mean_, generated_mean_) : 0;
  f.kv_wanted_tokens = kv_wanted_;
  f.kv_capacity_tokens = kv_capacity_;
  f.prompt_tokens_in_flight = prompt_in_flight_;
  f.generated_tokens_in_flight = generated_in_flight_;
  return f;
}

// -- the formula -----------------------------------------------------------------------

namespace {
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
bool serving(const member_load& m) { return m.state == "active" || m.state == "joining"; }
int ceil_of(double x) {
  if (!std::isfinite(x)) return x > 0 ? 1 << 20 : 0;
  return static_cast<int>(std::ceil(x - 1e-6));
}
}  // namespace

node_need need_of(const std::vector<member_load>& members, double util, double kv_util, double backlog_s) {
  node_need out;
  std::vector<double> caps, kvs;
  double arrivals = 0, queue = 0, wanted = 0;
  for (const auto& m : members) {
    if (m.state == "dead") continue;
    // Demand counts wherever it arrives (a draining node's sessions move on).
    arrivals += m.f.arrivals;
    queue += m.f.queue_depth;
    wanted += m.f.kv_wanted_tokens;
    if (!serving(m)) continue;
    ++out.serving;
    if (m.f.capacity > 0) caps.push_back(m.f.capacity);
    if (m.f.kv_capacity_tokens > 0) kvs.push_back(m.f.kv_capacity_tokens);
  }
  const double n = out.serving;
  if (!caps.empty()) {
    out.measured = true;
    const double typical = median(caps);
    double have = 0;
    for (double c : caps) have += c;
    have += typical * (n - static_cast<double>(caps.size()));  // not measured yet: a typical node
    const double need = arrivals / util + queue / std::max(backlog_s, 1e-3);
    out.tokens = n + (need - have) / typical;
  }
  if (!kvs.empty()) {
    const double typical = median(kvs);
    double have = 0;
    for (double c : kvs) have += c;
    have += typical * (n - static_cast<double>(kvs.size()));
    out.memory = n + (wanted / kv_util - have) / typical;
  }
  out.tokens = std::max(0.0, out.tokens);
  out.memory = std::max(0.0, out.memory);
  return out;
}

replica_controller::replica_controller(scaling_params p) : p_(p) {
  p_.min_replicas = std::max(1, p_.min_replicas);
  p_.max_replicas = std::max(p_.min_replicas, p_.max_replicas);
}

int replica_controller::clamp(int n) const { return std::min(p_.max_replicas, std::max(p_.min_replicas, n)); }

scaling_decision replica_controller::evaluate(const std::vector<member_load>& members, double now_s) {
  scaling_decision d;
  d.need = need_of(members, p_.util_target, p_.kv_target, std::max(p_.ttft_target_s, p_.backlog_horizon_s));
  if (desired_ == 0) {  // the first evaluation: start from what serves now
    desired_ = clamp(d.need.serving);
    first_s_ = now_s;
    d.reason = "first";
  }
  d.previous = desired_;
  const bool measured = d.need.measured;
  // Without a capacity measurement the token dimension holds the count;
  // memory is always known (from --kv-memory) and may still raise it.
  const double e = measured ? d.need.max() : std::max<double>(d.need.memory, 0);
  const double tol = std::max(0.0, std::min(0.5, p_.tolerance));
  int down = ceil_of(e * (1 + tol) / (1 - tol));
  if (!measured) down = std::max(down, desired_);
  window_.emplace_back(now_s, clamp(down));
  while (!window_.empty() && window_.front().first <= now_s - p_.down_window_s) window_.pop_front();
  d.down_candidate = 0;
  for (const auto& [t, c] : window_) d.down_candidate = std::max(d.down_candidate, c);

  int next = desired_;
  if (e > desired_ * (1 + tol) + 1e-9) {
    next = ceil_of(e);
    d.reason = "up";
  } else if (now_s - first_s_ >= p_.down_window_s && d.down_candidate < desired_) {
    next = d.down_candidate;
    d.reason = "down";
  } else if (d.reason != std::string("first")) {
    d.reason = measured ? "hold" : "hold: not measured";
  }
  if (next != clamp(next) && clamp(next) == desired_) d.reason = "bounds";
  next = clamp(next);
  d.changed = next != desired_;
  desired_ = next;
  d.desired = desired_;
  return d;
}

}  // namespace brigade::runtime
