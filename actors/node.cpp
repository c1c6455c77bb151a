#include "actors/node.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <condition_variable>
#include <cstdlib>
#include <future>
#include <optional>
#include <thread>

#include "actors/api_server.hpp"
#include "actors/gateway.hpp"
#include "actors/cluster.hpp"
#include "actors/messages.hpp"
#include "actors/node_cluster.hpp"
#include "actors/node_model.hpp"
#include "actors/supervisor.hpp"
#include "kernels/engine/make_engine.hpp"
#include "kernels/model/chat_choice.hpp"
#include "kernels/model/gguf.hpp"
#include "kernels/model/synth.hpp"
#include "runtime/hashing.hpp"
#include "runtime/log.hpp"
#include "runtime/protocol.hpp"
#include "runtime/redis_store.hpp"

namespace brigade::actors {

namespace {

struct node_system_config : caf::actor_system_config {
  explicit node_system_config(const runtime::node_config& cfg) {
    register_types(*this);
    load<caf::io::middleman>();
    // CAF closes any connection silent for connection-timeout, clients'
    // included: it must outlast stall-timeout, so that a client that stops
    // reading ends as `stalled` (its turn cancelled), not as a lost link.
    // Frozen peers are found by the cluster's own pings, far sooner.
    const auto timeout = std::max<runtime::duration>(std::chrono::seconds(5), cfg.stall_timeout + std::chrono::seconds(2));
    set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
    set("middleman.connection-timeout", caf::timespan{timeout});
    // The engine's threads need the cores; actors only route messages. Two
    // scheduler threads (not CAF's default of 2 per core) cut context
    // switches; the middleman does its own I/O without extra workers.
    set("scheduler.max-threads", size_t{2});
    set("middleman.workers", size_t{0});
  }
};

}  // namespace

struct node::impl {
  std::shared_ptr<node_context> ctx;
  std::unique_ptr<node_system_config> sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor supervisor, gateway, cluster;
  std::shared_ptr<runtime::membership> members;  // null outside a cluster
  runtime::member me;
  runtime::http_endpoint http;
  std::unique_ptr<api_server> api;  // null with --api-port off
  std::string host, model_desc, api_host;
  int port = 0, metrics_port = 0, api_port = 0;
  std::atomic<bool> draining{false};
  bool stopped = false;
  // The dashboard's sampler: one snapshot a second (runtime/dashboard.hpp).
  std::thread sampler;
  std::mutex sampler_mu;
  std::condition_variable sampler_cv;
  bool sampler_stop = false;
  double last_tokens = -1;
  std::chrono::steady_clock::time_point last_tokens_at;

  /// The cluster as this node sees it now: its own figures fresh from its
  /// metrics, the other members' from the last table read (a heartbeat old
  /// at most, plus the time since that read).
  void sample() {
    auto& c = *ctx;
    runtime::dash_snapshot s;
    s.time = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    s.self = c.cfg.node_name;
    s.cluster = c.cluster->enabled() ? c.cluster->cluster() : "";
    auto f = c.metrics->figures();
    const auto now = std::chrono::steady_clock::now();
    const double tokens = f["tokens_generated_total"];
    double rate = 0;
    if (last_tokens >= 0) {
      const double dt = std::chrono::duration<double>(now - last_tokens_at).count();
      if (dt > 0) rate = std::max(0.0, tokens - last_tokens) / dt;
    }
    last_tokens = tokens;
    last_tokens_at = now;
    f.erase("tokens_generated_total");
    f["tokens_per_second"] = rate;
    cluster_view::clock_point read_at;
    bool seen = false;
    s.nodes = c.cluster->members(&read_at, &seen);
    s.complete = !c.cluster->enabled() || seen;
    const double since_read = std::chrono::duration<double>(now - read_at).count();
    bool have_self = false;
    for (auto& n : s.nodes) {
      n.heartbeat_age_seconds += since_read;
      if (n.name != s.self) continue;
      have_self = true;
      for (const auto& [k, v] : f) n.figures[k] = v;
    }
    if (!have_self) {  // the memory store, or before the first heartbeat
      runtime::dash_node n;
      n.name = s.self;
      n.address = advertised_address(c.cfg, port);
      n.state = c.cluster->enabled() ? "joining" : (draining ? "draining" : "active");
      n.model = c.model_id;
      n.version = protocol_version;
      n.capacity = c.cfg.capacity;
      n.figures = std::move(f);
      s.nodes.push_back(std::move(n));
    }
    c.dash->update(std::move(s));
  }

  void start_sampler() {
    sample();  // the page has data from its first request
    sampler = std::thread([this] {
      std::unique_lock<std::mutex> g(sampler_mu);
      while (!sampler_cv.wait_for(g, std::chrono::seconds(1), [this] { return sampler_stop; })) {
        g.unlock();
        sample();
        g.lock();
      }
    });
  }

  ~impl() { stop_sampler(); }

  void stop_sampler() {
    {
      std::lock_guard<std::mutex> g(sampler_mu);
      sampler_stop = true;
    }
    sampler_cv.notify_all();
    if (sampler.joinable()) sampler.join();
  }

  /// Joins the cluster and starts the cluster actor.
  status join(const runtime::redis_url& url) {
    runtime::member m;
    m.name = ctx->cfg.node_name;
    m.address = advertised_address(ctx->cfg, port);
    m.incarnation = ctx->cluster->incarnation();
    m.state = "joining";
    m.model = ctx->model_id;
    m.version = protocol_version;
    m.capacity = ctx->cfg.capacity;
    auto j = join_cluster(*sys, ctx->cfg, url, m);
    if (!j) return j.error();
    members = j->table;
    me = j->me;
    cluster = spawn_cluster(*sys, ctx, members, me, supervisor);
    set_gateway_cluster(*sys, gateway, cluster);
    caf::anon_send(supervisor, cluster_atom::value, cluster);
    runtime::log(runtime::log_level::info, "",
                 "joined cluster " + ctx->cluster->cluster() + " as " + me.name + " (incarnation " + me.incarnation +
                     ", advertised at " + me.address + ")");
    return {};
  }

  /// Leaves the membership table (before the connections close, so the
  /// peers see a member leave rather than one to declare dead).
  void leave() {
    if (!members) return;
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    me.incarnation = ctx->cluster->incarnation();
    members->leave(me, [done](runtime::store_status) { done->set_value(); });
    f.wait_for(std::chrono::seconds(2));
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    if (sys) {
      if (port) sys->middleman().unpublish(gateway, static_cast<uint16_t>(port));
      leave();
      if (cluster) caf::anon_send_exit(cluster, caf::exit_reason::user_shutdown);
      cluster = nullptr;
      caf::anon_send_exit(gateway, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
      gateway = nullptr;
      supervisor = nullptr;
      // Every session has exited (and cancelled its engine work) before the
      // batch loop stops: the loop's jobs hold actor handles, which must be
      // released while the actor system still exists.
      sys->await_all_actors_done();
    }
    // After the actors (a turn cut off by drain-grace ends now, not after
    // the HTTP servers' shutdown): every open stream has had its answer
    // (an error event), so the API's threads end.
    if (api) api->stop();
    api.reset();
    http.stop();
    stop_sampler();
    if (ctx) ctx->loop->shutdown(false);
    // The store sends what is queued (lease releases) and runs its callbacks,
    // which message actors: while the actor system still exists.
    if (ctx) ctx->store.reset();
    members.reset();
    sys.reset();
    ctx.reset();
  }
};

node::node(std::unique_ptr<impl> p) : p_(std::move(p)) {}
node::~node() { p_->stop(); }

const std::string& node::host() const { return p_->host; }
int node::port() const { return p_->port; }
int node::metrics_port() const { return p_->metrics_port; }
int node::api_port() const { return p_->api_port; }
const std::string& node::api_host() const { return p_->api_host; }
const std::string& node::model_description() const { return p_->model_desc; }
int node::turns_in_flight() const { return p_->ctx ? p_->ctx->turns_in_flight.load() : 0; }

result<std::unique_ptr<node>> node::start(const runtime::node_config& cfg_in, bool fault_injection) {
  auto p = std::make_unique<impl>();
  runtime::node_config cfg = cfg_in;
  if (auto d = parse_device(cfg.device); !d) return status{errc::invalid_argument, "--device: " + d.error().message()};
  if (cfg.lease < std::chrono::milliseconds(100))
    return status{errc::invalid_argument, "--lease " + runtime::format_duration(cfg.lease) +
                                              " is too short: sessions renew every lease/3; use at least 100ms"};
  if (auto s = check_cluster_flags(cfg); !s) return s;
  auto api_keys = load_api_keys(cfg);
  if (!api_keys) return api_keys.error();
  const bool api_on = cfg.api_port != "off";
  const int api_port = cfg.api_port.empty() ? (cfg.port == 0 ? 0 : 8080) : (api_on ? std::stoi(cfg.api_port) : 0);
  if (api_on && api_keys->empty() && !is_loopback_host(cfg.api_host))
    return status{errc::invalid_argument,
                  "--api-host " + cfg.api_host +
                      " would serve the HTTP API beyond this machine without an API key; give --api-keys-file FILE "
                      "(or BRIGADE_API_KEY), or serve it on 127.0.0.1"};
  if (!cfg.admin_token_file.empty()) {
    auto t = runtime::read_secret_file(cfg.admin_token_file, "--admin-token-file");
    if (!t) return t.error();
    cfg.admin_token = *t;
  }
  std::shared_ptr<runtime::session_store> store;
  std::optional<runtime::redis_url> redis;
  runtime::store_options so;
  so.retention = cfg.retention;
  so.lease = cfg.lease;
  if (cfg.store == "memory") {
    if (!cfg.store_password_file.empty())
      return status{errc::invalid_argument,
                    "--store-password-file is for a Redis store; give --store redis://host:port/db as well"};
    store = runtime::make_memory_store(so);
  } else {
    auto url = runtime::parse_redis_url(cfg.store);
    if (!url) return status{errc::invalid_argument, "--store: " + url.error().message() + " (or memory)"};
    if (!cfg.store_password_file.empty()) {
      auto pw = runtime::read_secret_file(cfg.store_password_file, "--store-password-file");
      if (!pw) return pw.error();
      // With the password in a file, redis://NAME@host names an ACL user.
      if (url->single_credential) url->user = url->password;
      url->password = *pw;
    }
    store = runtime::make_redis_store(*url, so);
    redis = *url;
  }
  std::string model_path = cfg.model;
  if (model_path.empty()) {
    auto b = builtin_model_path();
    if (!b) return b.error();
    model_path = *b;
  }
  auto model = llama_model::load(model_path);
  if (!model) return model.error();
  // The chat format is decided before the engine takes its memory.
  auto tmpl = (*model)->file().get_string("tokenizer.chat_template", "");
  if (!tmpl) return status{errc::malformed, model_path + ": " + tmpl.error().message()};
  auto choice = choose_chat_format(*tmpl, (*model)->vocab(), cfg.chat_template);
  if (!choice) return status{choice.error().code(), model_path + ": " + choice.error().message()};
  engine_config ec;
  ec.n_threads = cfg.threads;
  ec.n_ctx = cfg.context;
  ec.max_sequences = std::max(cfg.max_batch * 4, 64);
  ec.kv_memory_bytes = cfg.kv_memory;
  ec.max_step_tokens = std::max(cfg.step_tokens, cfg.max_batch);
  auto eng = make_engine(cfg.device, *model, ec);
  if (!eng) return eng.error();

  auto ctx = std::make_shared<node_context>();
  ctx->metrics = std::make_shared<runtime::node_metrics>(cfg.device);
  // The rate and queue window is the evaluation interval: a step in load is
  // whole in the figures by the second evaluation after it.
  ctx->metrics->set_scaling_shape(cfg.max_batch, std::chrono::duration<double>(cfg.ttft_target).count(),
                                  std::chrono::duration<double>(cfg.scale_interval).count());
  ctx->metrics->set_store_up(true);  // the memory store is always up; on Redis each heartbeat says
  ctx->store = std::move(store);
  batch_config bc;
  bc.max_batch = cfg.max_batch;
  bc.batch_window = cfg.batch_window;
  bc.step_tokens = std::max(cfg.step_tokens, cfg.max_batch);
  bc.queue_limit = cfg.queue_limit;
  // After a device failure the loop makes a fresh engine of the same model.
  engine_factory restart = [device = cfg.device, model = *model, ec]() { return make_engine(device, model, ec); };
  ctx->loop = std::make_shared<batch_loop>(std::move(*eng), bc, ctx->metrics.get(), std::move(restart));
  ctx->format = choice->format;
  std::vector<std::string> warnings;
  if (!choice->warning.empty()) warnings.push_back(model_path + ": " + choice->warning);
  const int32_t n_ctx_train = (*model)->hparams().n_ctx_train;
  if (cfg.context > n_ctx_train)
    warnings.push_back("--context " + std::to_string(cfg.context) + " exceeds the " + std::to_string(n_ctx_train) +
                       " tokens the file gives as its context length (llama.context_length); replies past that "
                       "length may degrade");
  ctx->model_id = model_identity(**model);
  // What the API's `model` may name: general.name, and the file's base name.
  std::vector<std::string> model_ids;
  if (auto n = (*model)->file().get_string("general.name", ""); n && !n->empty()) model_ids.push_back(*n);
  {
    std::string base = model_path.substr(model_path.find_last_of('/') + 1);
    if (base.size() > 5 && base.compare(base.size() - 5, 5, ".gguf") == 0) base.resize(base.size() - 5);
    if (model_ids.empty() || model_ids[0] != base) model_ids.push_back(base);
  }
  if (redis)
    ctx->cluster = std::make_shared<cluster_view>(cfg.cluster.empty() ? "brigade" : cfg.cluster, runtime::random_hex(8));
  ctx->fault_injection = fault_injection;
  p->model_desc = (*model)->describe() + ", " + ctx->loop->backend_name();

  // The configuration is complete before any actor sees it (actors read it
  // unsynchronised). With --port 0 the bound port is not known yet: the name
  // then uses the process id; set --node-name for a name stable across restarts.
  if (cfg.node_name.empty())
    cfg.node_name = cfg.host + ":" + (cfg.port != 0 ? std::to_string(cfg.port) : "pid" + std::to_string(::getpid()));
  ctx->cfg = cfg;
  p->sys_cfg = std::make_unique<node_system_config>(cfg);
  p->sys = std::make_unique<caf::actor_system>(*p->sys_cfg);
  p->supervisor = spawn_supervisor(*p->sys, ctx);
  p->gateway = spawn_gateway(*p->sys, ctx, p->supervisor);
  auto bound = p->sys->middleman().publish(p->gateway, static_cast<uint16_t>(cfg.port), cfg.host.c_str(), true);
  if (!bound) {
    p->ctx = ctx;
    const std::string why = p->sys->render(bound.error());
    p->stop();
    return status{errc::io, "cannot serve on " + cfg.host + ":" + std::to_string(cfg.port) + " (" + why +
                                "); pick another --port or stop the other process"};
  }
  p->port = *bound;
  p->host = cfg.host;
  p->ctx = ctx;
  runtime::configure_log(cfg.log_level, cfg.node_name);
  if (redis) {
    if (auto s = p->join(*redis); !s) {
      p->stop();
      return s;
    }
  }
  for (const std::string& w : warnings) runtime::log(runtime::log_level::warn, "", w);
  std::string http_error;
  impl* raw = p.get();
  p->start_sampler();
  p->metrics_port = p->http.start(
      cfg.host, cfg.metrics_port, ctx->metrics.get(), ctx->dash.get(),
      [raw]() -> std::string {
        if (raw->draining) return "draining";
        if (raw->ctx) {
          if (std::string why = raw->ctx->cluster->not_serving(); !why.empty()) return why;
        }
        if (raw->ctx && raw->ctx->loop->load() >= raw->ctx->cfg.queue_limit) return "the engine queue is full";
        return "";
      },
      http_error);
  if (p->metrics_port == 0) {
    p->stop();
    return status{errc::io, http_error + "; pick another --metrics-port"};
  }
  if (api_on) {
    api_options ao;
    ao.model_ids = std::move(model_ids);
    ao.key_hashes = std::move(*api_keys);
    ao.draining = [raw] { return raw->draining.load(); };
    ao.clustered = [raw] { return raw->cluster != nullptr; };
    auto api = api_server::start(*p->sys, ctx, p->gateway, std::move(ao), api_port);
    if (!api) {
      p->stop();
      return api.error();
    }
    p->api = std::move(*api);
    p->api_port = p->api->port();
    p->api_host = cfg.api_host;
  }
  return std::unique_ptr<node>(new node(std::move(p)));
}

bool node::drain_and_stop() {
  auto& p = *p_;
  p.draining = true;
  const bool clustered = p.cluster != nullptr;
  if (clustered) p.ctx->cluster->set_draining();  // no placement here from now on
  drain_gateway(*p.sys, p.gateway);
  const auto deadline = std::chrono::steady_clock::now() + p.ctx->cfg.drain_grace;
  auto wait_for = [&](auto busy) {
    while (busy()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  };
  auto& c = *p.ctx;
  // In-flight turns finish; in a cluster every session hands over (idle ones
  // at once) while new work goes on to the active nodes.
  bool drained = wait_for([&] {
    return c.turns_in_flight.load() > 0 || c.loop->load() > 0 || (clustered && c.sessions_live.load() > 0);
  });
  if (clustered) {
    // Then refuse (clients move to other nodes) and let what this node
    // forwards finish before it leaves.
    const auto t0 = std::chrono::steady_clock::now();
    close_gateway(*p.sys, p.gateway);
    const bool forwards_done = wait_for([&] { return c.cluster->forwards() > 0 || c.turns_in_flight.load() > 0; });
    drained = forwards_done && drained;
    runtime::log(runtime::log_level::info, "",
                 std::string(forwards_done ? "sessions handed over; forwarded requests finished in "
                                           : "sessions handed over; forwarded requests still running after ") +
                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - t0)
                                        .count()) +
                     " ms; leaving the cluster");
  }
  p.stop();
  return drained;
}

}  // namespace brigade::actors
