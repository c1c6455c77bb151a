#include "runtime/metrics.hpp"

#include "runtime/dashboard.hpp"
#include "runtime/dashboard_assets.hpp"

#include <civetweb.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numeric>
#include <vector>

namespace brigade::runtime {

namespace {
/// The last `cap` samples, in a ring.
struct recent {
  static constexpr size_t cap = 512;
  std::vector<double> v;
  size_t next = 0;
  void add(double x) {
    if (v.size() < cap) {
      v.push_back(x);
    } else {
      v[next] = x;
      next = (next + 1) % cap;
    }
  }
  double quantile(double q) const {
    if (v.empty()) return 0;
    std::vector<double> s = v;
    const size_t k = std::min(s.size() - 1, static_cast<size_t>(q * static_cast<double>(s.size())));
    std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(k), s.end());
    return s[k];
  }
  double mean() const { return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()); }
};

prometheus::Histogram::BucketBoundaries seconds_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}
}  // namespace

struct node_metrics::impl {
  prometheus::Registry reg;
  std::string device;
  prometheus::Gauge* queue_depth;
  prometheus::Histogram* ttft;
  prometheus::Histogram* gen_latency;
  prometheus::Histogram* tpot;
  prometheus::Histogram* batch_size;
  prometheus::Gauge* busy;
  prometheus::Counter* tokens;
  prometheus::Counter* prompt;
  prometheus::Gauge* sessions;
  prometheus::Family<prometheus::Counter>* rejected;
  prometheus::Family<prometheus::Counter>* http_requests;
  prometheus::Counter* restarts;
  prometheus::Gauge* kv;
  prometheus::Histogram* store_latency;
  prometheus::Family<prometheus::Gauge>* cluster_nodes;
  prometheus::Counter* forwarded;
  prometheus::Family<prometheus::Counter>* handoffs;
  prometheus::Gauge* store_up;
  prometheus::Gauge* desired;
  prometheus::Gauge* load_ratio;
  prometheus::Gauge* ttft_target;
  load_meter meter;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double now_s() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
  // Recent samples for the node object's percentiles and means.
  mutable std::mutex mu;
  recent ttft_recent, batch_recent;
  std::atomic<uint64_t> rejected_total{0};
  std::atomic<uint64_t> handoffs_failover{0}, handoffs_drain{0};

  explicit impl(std::string dev) : device(std::move(dev)) {
    using namespace prometheus;
    const Labels d{{"device", device}};
    queue_depth = &BuildGauge().Name("brigade_queue_depth").Help("Turns waiting for the engine").Register(reg).Add(d);
    ttft = &BuildHistogram()
                .Name("brigade_time_to_first_token_seconds")
                .Help("Time from a chat request to its first token")
                .Register(reg)
                .Add({}, seconds_buckets());
    gen_latency = &BuildHistogram()
                       .Name("brigade_generation_latency_seconds")
                       .Help("Time from a chat request to its acknowledgement")
                       .Register(reg)
                       .Add({}, seconds_buckets());
    tpot = &BuildHistogram()
                .Name("brigade_time_per_output_token_seconds")
                .Help("Mean time between output tokens of a turn")
                .Register(reg)
                .Add({}, seconds_buckets());
    batch_size = &BuildHistogram()
                      .Name("brigade_batch_size")
                      .Help("Sequences per engine step")
                      .Register(reg)
                      .Add(d, Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256});
    busy =
        &BuildGauge().Name("brigade_engine_busy_ratio").Help("Share of time the engine computes").Register(reg).Add(d);
    tokens = &BuildCounter().Name("brigade_tokens_generated_total").Help("Tokens generated").Register(reg).Add({});
    prompt = &BuildCounter().Name("brigade_prompt_tokens_total").Help("Prompt tokens prefilled").Register(reg).Add({});
    sessions = &BuildGauge().Name("brigade_sessions_active").Help("Live session actors").Register(reg).Add({});
    rejected = &BuildCounter().Name("brigade_requests_rejected_total").Help("Refused requests by reason").Register(reg);
    http_requests = &BuildCounter()
                         .Name("brigade_http_requests_total")
                         .Help("HTTP API requests by route pattern and status code")
                         .Register(reg);
    restarts =
        &BuildCounter().Name("brigade_session_restarts_total").Help("Session actors restarted").Register(reg).Add({});
    kv = &BuildGauge().Name("brigade_kv_cache_usage_ratio").Help("Share of KV blocks in use").Register(reg).Add(d);
    store_latency = &BuildHistogram()
                         .Name("brigade_store_latency_seconds")
                         .Help("Store write latency")
                         .Register(reg)
                         .Add({}, seconds_buckets());
    cluster_nodes = &BuildGauge().Name("brigade_cluster_nodes").Help("Members of the cluster by state").Register(reg);
    forwarded = &BuildCounter()
                     .Name("brigade_turns_forwarded_total")
                     .Help("Requests this node forwarded to the session's owner")
                     .Register(reg)
                     .Add({});
    handoffs = &BuildCounter()
                    .Name("brigade_session_handoffs_total")
                    .Help("Sessions this node took over, by reason")
                    .Register(reg);
    store_up = &BuildGauge()
                    .Name("brigade_store_up")
                    .Help("1 while the last store round trip within a heartbeat period succeeded")
                    .Register(reg)
                    .Add({});
    desired = &BuildGauge()
                   .Name("brigade_cluster_desired_replicas")
                   .Help("Nodes the cluster needs (docs/scaling.md); every node exports the same: aggregate with max()")
                   .Register(reg)
                   .Add({});
    load_ratio = &BuildGauge()
                      .Name("brigade_node_load_ratio")
                      .Help("This node's demand over its capacity (the larger of tokens and KV memory)")
                      .Register(reg)
                      .Add({});
    ttft_target = &BuildGauge()
                       .Name("brigade_ttft_target_seconds")
                       .Help("The time-to-first-token objective (--ttft-target)")
                       .Register(reg)
                       .Add({});
    ttft_target->Set(1);
  }
};

node_metrics::node_metrics(std::string device) : p_(std::make_unique<impl>(std::move(device))) {}
node_metrics::~node_metrics() = default;

void node_metrics::set_queue_depth(double v) {
  p_->queue_depth->Set(v);
  p_->meter.queue_sample(p_->now_s(), v);
}
void node_metrics::observe_ttft(double s) {
  p_->ttft->Observe(s);
  std::lock_guard<std::mutex> g(p_->mu);
  p_->ttft_recent.add(s);
}
void node_metrics::observe_generation_latency(double s) { p_->gen_latency->Observe(s); }
void node_metrics::observe_time_per_output_token(double s) { p_->tpot->Observe(s); }
void node_metrics::observe_batch_size(double n) {
  p_->batch_size->Observe(n);
  std::lock_guard<std::mutex> g(p_->mu);
  p_->batch_recent.add(n);
}
void node_metrics::set_engine_busy_ratio(double v) { p_->busy->Set(v); }
void node_metrics::add_tokens_generated(double n) { p_->tokens->Increment(n); }
void node_metrics::add_prompt_tokens(double n) { p_->prompt->Increment(n); }
void node_metrics::set_sessions_active(double v) { p_->sessions->Set(v); }
void node_metrics::add_rejected(const std::string& reason) {
  p_->rejected->Add({{"reason", reason}}).Increment();
  p_->rejected_total.fetch_add(1);
}
void node_metrics::add_http_request(const std::string& route, int code) {
  p_->http_requests->Add({{"route", route}, {"code", std::to_string(code)}}).Increment();
}
void node_metrics::add_session_restart() { p_->restarts->Increment(); }
void node_metrics::set_kv_cache_usage(double r) { p_->kv->Set(r); }
void node_metrics::observe_store_latency(double s) { p_->store_latency->Observe(s); }

void node_metrics::set_cluster_nodes(const std::string& state, double n) {
  p_->cluster_nodes->Add({{"state", state}}).Set(n);
}
void node_metrics::add_turn_forwarded() { p_->forwarded->Increment(); }
void node_metrics::add_session_handoff(const std::string& reason) {
  p_->handoffs->Add({{"reason", reason}}).Increment();
  (reason == "failover" ? p_->handoffs_failover : p_->handoffs_drain).fetch_add(1);
}
void node_metrics::set_store_up(bool up) { p_->store_up->Set(up ? 1 : 0); }

void node_metrics::add_turn_arrival() { p_->meter.arrival(p_->now_s()); }
void node_metrics::observe_step(double tokens_fed, double seconds) { p_->meter.step(tokens_fed, seconds); }
void node_metrics::observe_turn_work(double prompt, double generated) { p_->meter.turn_done(prompt, generated); }
void node_metrics::set_kv_demand(double wanted, double capacity) { p_->meter.kv(wanted, capacity); }
void node_metrics::set_tokens_in_flight(double prompt, double generated) { p_->meter.in_flight(prompt, generated); }
void node_metrics::set_scaling_shape(int max_batch, double ttft_target_seconds, double window_seconds) {
  load_meter::options o;
  o.max_batch = max_batch;
  o.window_s = std::max(1.0, window_seconds);
  p_->meter.reshape(o);
  p_->ttft_target->Set(ttft_target_seconds);
}
void node_metrics::set_scaling_signal(double desired_replicas, double load_ratio) {
  p_->desired->Set(desired_replicas);
  p_->load_ratio->Set(load_ratio);
}
load_figures node_metrics::load() const { return p_->meter.figures(p_->now_s()); }

void put_load_figures(const load_figures& f, std::map<std::string, double>& out) {
  out["scale_arrivals_per_second"] = f.arrivals;
  out["scale_queue_depth"] = f.queue_depth;
  out["scale_capacity_turns_per_second"] = f.capacity;
  out["scale_prompt_tokens_per_turn"] = f.prompt_tokens;
  out["scale_generated_tokens_per_turn"] = f.generated_tokens;
  out["scale_prompt_tokens_in_flight"] = f.prompt_tokens_in_flight;
  out["scale_generated_tokens_in_flight"] = f.generated_tokens_in_flight;
  out["scale_kv_wanted_tokens"] = f.kv_wanted_tokens;
  out["scale_kv_capacity_tokens"] = f.kv_capacity_tokens;
}

load_figures get_load_figures(const std::map<std::string, double>& in) {
  auto get = [&](const char* k) {
    auto it = in.find(k);
    return it == in.end() || !std::isfinite(it->second) ? 0.0 : it->second;
  };
  load_figures f;
  f.arrivals = get("scale_arrivals_per_second");
  f.queue_depth = get("scale_queue_depth");
  f.capacity = get("scale_capacity_turns_per_second");
  f.prompt_tokens = get("scale_prompt_tokens_per_turn");
  f.generated_tokens = get("scale_generated_tokens_per_turn");
  f.prompt_tokens_in_flight = get("scale_prompt_tokens_in_flight");
  f.generated_tokens_in_flight = get("scale_generated_tokens_in_flight");
  f.kv_wanted_tokens = get("scale_kv_wanted_tokens");
  f.kv_capacity_tokens = get("scale_kv_capacity_tokens");
  return f;
}

std::map<std::string, double> node_metrics::figures() const {
  std::map<std::string, double> f;
  f["sessions"] = p_->sessions->Value();
  f["queue_depth"] = p_->queue_depth->Value();
  f["tokens_generated_total"] = p_->tokens->Value();
  f["engine_busy_ratio"] = p_->busy->Value();
  f["kv_cache_usage_ratio"] = p_->kv->Value();
  f["session_restarts"] = p_->restarts->Value();
  f["requests_rejected"] = static_cast<double>(p_->rejected_total.load());
  f["session_handoffs_failover"] = static_cast<double>(p_->handoffs_failover.load());
  f["session_handoffs_drain"] = static_cast<double>(p_->handoffs_drain.load());
  put_load_figures(load(), f);
  f["load_ratio"] = p_->load_ratio->Value();
  f["desired_replicas"] = p_->desired->Value();
  std::lock_guard<std::mutex> g(p_->mu);
  f["ttft_p50_seconds"] = p_->ttft_recent.quantile(0.5);
  f["ttft_p99_seconds"] = p_->ttft_recent.quantile(0.99);
  f["mean_batch_size"] = p_->batch_recent.mean();
  return f;
}

std::string node_metrics::serialize() const { return prometheus::TextSerializer{}.Serialize(p_->reg.Collect()); }

struct http_endpoint::impl {
  mg_context* ctx = nullptr;
  const node_metrics* metrics = nullptr;
  const dashboard* dash = nullptr;
  std::function<std::string()> ready;
};

namespace {
// The dashboard's page loads only its own files and talks only to this
// port (nothing leaves the machine it is opened on, and no other site may
// frame it).
constexpr const char* page_headers =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-cache\r\n";

void reply(mg_connection* c, int code, const char* reason, std::string_view type, std::string_view body,
           const char* extra_headers = "") {
  const bool head = std::strcmp(mg_get_request_info(c)->request_method, "HEAD") == 0;
  mg_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: %.*s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n", code,
            reason, static_cast<int>(type.size()), type.data(), body.size(), extra_headers);
  if (!head) mg_write(c, body.data(), body.size());
}
/// GET and HEAD only: anything else is answered 405 here (true).
bool refuse_method(mg_connection* c) {
  const char* m = mg_get_request_info(c)->request_method;
  if (std::strcmp(m, "GET") == 0 || std::strcmp(m, "HEAD") == 0) return false;
  mg_printf(c, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain\r\n"
               "Content-Length: 44\r\nConnection: close\r\n\r\nthis endpoint answers GET and HEAD requests\n");
  return true;
}
/// The query parameter `name` as a number in [lo, hi]; `def` when absent;
/// false with `why` set when it is not a number in range.
bool query_number(mg_connection* c, const char* name, double def, double lo, double hi, double& out,
                  std::string& why) {
  out = def;
  const char* q = mg_get_request_info(c)->query_string;
  if (!q) return true;
  char buf[64];
  const int n = mg_get_var(q, std::strlen(q), name, buf, sizeof buf);
  if (n == -1) return true;  // absent
  char* end = nullptr;
  const double v = n > 0 ? std::strtod(buf, &end) : 0;
  if (n <= 0 || end == buf || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
    why = std::string("query parameter ") + name + " must be a number from " + std::to_string(static_cast<long>(lo)) +
          " to " + std::to_string(static_cast<long>(hi)) + "\n";
    return false;
  }
  out = v;
  return true;
}
constexpr const char* json_type = "application/json";
constexpr const char* not_found_text =
    "no such page; this port serves / (the dashboard), /metrics, /healthz, /readyz and "
    "/api/v1/{cluster,events,series}\n";
constexpr const char* api_headers = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
int handle_page(mg_connection* c, void*) {
  if (refuse_method(c)) return 405;
  const char* uri = mg_get_request_info(c)->local_uri;
  const dash_asset* a = find_dash_asset(uri ? uri : "");
  if (!a) {
    reply(c, 404, "Not Found", "text/plain",
          not_found_text);
    return 404;
  }
  const bool library = a->path == "/chart.min.js";
  std::string headers = page_headers;
  if (library) headers.replace(headers.find("Cache-Control: no-cache"), 23, "Cache-Control: max-age=86400");
  reply(c, 200, "OK", a->type, a->body, headers.c_str());
  return 200;
}
/// civetweb also hands "/api/v1/cluster/x" to the "/api/v1/cluster"
/// handler: only the exact path is served (404 otherwise, true).
bool not_exact(mg_connection* c, const char* path) {
  const char* uri = mg_get_request_info(c)->local_uri;
  if (uri && std::strcmp(uri, path) == 0) return false;
  reply(c, 404, "Not Found", "text/plain", not_found_text);
  return true;
}
int handle_cluster(mg_connection* c, void* data) {
  if (not_exact(c, "/api/v1/cluster")) return 404;
  if (refuse_method(c)) return 405;
  reply(c, 200, "OK", json_type, static_cast<http_endpoint::impl*>(data)->dash->cluster_json(), api_headers);
  return 200;
}
int handle_events(mg_connection* c, void* data) {
  if (not_exact(c, "/api/v1/events")) return 404;
  if (refuse_method(c)) return 405;
  double since = 0;
  std::string why;
  if (!query_number(c, "since", 0, 0, 1e12, since, why)) {
    reply(c, 400, "Bad Request", "text/plain", why);
    return 400;
  }
  reply(c, 200, "OK", json_type, static_cast<http_endpoint::impl*>(data)->dash->events_json(since), api_headers);
  return 200;
}
int handle_series(mg_connection* c, void* data) {
  if (not_exact(c, "/api/v1/series")) return 404;
  if (refuse_method(c)) return 405;
  auto* p = static_cast<http_endpoint::impl*>(data);
  double seconds = 0;
  std::string why;
  const auto hi = static_cast<double>(p->dash->history());
  if (!query_number(c, "seconds", hi, 1, hi, seconds, why)) {
    reply(c, 400, "Bad Request", "text/plain", why);
    return 400;
  }
  reply(c, 200, "OK", json_type, p->dash->series_json(seconds), api_headers);
  return 200;
}
int handle_metrics(mg_connection* c, void* data) {
  auto* p = static_cast<http_endpoint::impl*>(data);
  reply(c, 200, "OK", "text/plain; version=0.0.4", p->metrics->serialize());
  return 200;
}
int handle_healthz(mg_connection* c, void*) {
  reply(c, 200, "OK", "text/plain", "ok\n");
  return 200;
}
int handle_readyz(mg_connection* c, void* data) {
  auto* p = static_cast<http_endpoint::impl*>(data);
  const std::string why = p->ready ? p->ready() : "";
  if (why.empty()) {
    reply(c, 200, "OK", "text/plain", "ready\n");
    return 200;
  }
  reply(c, 503, "Service Unavailable", "text/plain", why + "\n");
  return 503;
}
}  // namespace

http_endpoint::http_endpoint() : p_(std::make_unique<impl>()) {}
http_endpoint::~http_endpoint() { stop(); }

int http_endpoint::start(const std::string& host, int port, const node_metrics* metrics, const dashboard* dash,
                         std::function<std::string()> ready, std::string& error) {
  p_->metrics = metrics;
  p_->dash = dash;
  p_->ready = std::move(ready);
  const std::string listen = host + ":" + std::to_string(port);
  // Probes, Prometheus and open dashboards share this port: enough threads
  // that a few pages (three requests a second each) never hold up a probe,
  // and a request that sends nothing is dropped after 5 s.
  const char* options[] = {"listening_ports", listen.c_str(), "num_threads", "8", "request_timeout_ms", "5000",
                           nullptr};
  mg_callbacks cb;
  std::memset(&cb, 0, sizeof cb);
  p_->ctx = mg_start(&cb, nullptr, options);
  if (!p_->ctx) {
    error = "cannot serve HTTP on " + listen + " (port in use?)";
    return 0;
  }
  mg_set_request_handler(p_->ctx, "/metrics", handle_metrics, p_.get());
  mg_set_request_handler(p_->ctx, "/healthz", handle_healthz, p_.get());
  mg_set_request_handler(p_->ctx, "/readyz", handle_readyz, p_.get());
  if (dash) {
    mg_set_request_handler(p_->ctx, "/", handle_page, p_.get());
    mg_set_request_handler(p_->ctx, "/api/v1/cluster", handle_cluster, p_.get());
    mg_set_request_handler(p_->ctx, "/api/v1/events", handle_events, p_.get());
    mg_set_request_handler(p_->ctx, "/api/v1/series", handle_series, p_.get());
  }
  mg_server_port ports[4];
  const int n = mg_get_server_ports(p_->ctx, 4, ports);
  return n > 0 ? ports[0].port : port;
}

void http_endpoint::stop() {
  if (p_ && p_->ctx) {
    mg_stop(p_->ctx);
    p_->ctx = nullptr;
  }
}

}  // namespace brigade::runtime
