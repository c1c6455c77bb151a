#include "actors/supervisor.hpp"

#include <caf/all.hpp>

#include <deque>
#include <map>
#include <memory>

#include "actors/messages.hpp"
#include "actors/session.hpp"
#include "runtime/clock.hpp"
#include "runtime/hashing.hpp"
#include "runtime/log.hpp"
#include "runtime/protocol.hpp"
#include "runtime/scaling.hpp"

namespace brigade::actors {

namespace {

using clock_type = std::chrono::steady_clock;
using runtime::log;
using runtime::log_level;

struct pending_open {
  std::string token;
  runtime::session_meta meta;
  caf::response_promise rp;
};

struct supervisor_state {
  std::shared_ptr<node_context> ctx;
  std::map<std::string, caf::actor> live;
  std::map<caf::actor_addr, std::string> by_addr;
  std::map<std::string, std::deque<clock_type::time_point>> crashes;
  std::map<std::string, std::string> failed;  // id -> why
  std::map<std::string, pending_open> opening;
  caf::actor cluster;                          // null outside a cluster
  std::map<std::string, std::string> owners;  // session -> the live node that owns it (bounded cache)
  bool draining = false;
  std::unique_ptr<runtime::replica_controller> scaler;  // the replica signal (docs/scaling.md)
  clock_type::time_point scale_t0 = clock_type::now();
  static inline const char* name = "brigade.supervisor";
};

using self_ptr = caf::stateful_actor<supervisor_state>*;

void count_live(supervisor_state& st) {
  st.ctx->metrics->set_sessions_active(static_cast<double>(st.live.size()));
  st.ctx->sessions_live.store(static_cast<int>(st.live.size()));
}

caf::actor start_session(self_ptr self, const runtime::session_meta& meta, bool restore, bool place = false) {
  auto& st = self->state;
  caf::actor s = spawn_session(self->system(), st.ctx, meta, restore, place, caf::actor_cast<caf::actor>(self));
  self->monitor(s);
  st.live[meta.id] = s;
  st.by_addr[s.address()] = meta.id;
  count_live(st);
  if (st.draining && !restore) self->send(s, handover_atom::value);
  return s;
}

caf::error max_sessions_error(const node_context& ctx) {
  ctx.metrics->add_rejected("max_sessions");
  return make_error(brigade_errc::overloaded, "this node holds its maximum of " + std::to_string(ctx.cfg.max_sessions) +
                                                  " live sessions; retry after about 1s");
}

/// The live session for `id`, restoring it from the store if needed (with
/// `place`, wherever placement puts it); an error for failed sessions and
/// when the node is full.
caf::expected<caf::actor> find(self_ptr self, const std::string& id, bool place = false) {
  auto& st = self->state;
  if (auto it = st.live.find(id); it != st.live.end()) return it->second;
  if (auto f = st.failed.find(id); f != st.failed.end()) return make_error(brigade_errc::session_failed, f->second);
  if (static_cast<int>(st.live.size()) >= st.ctx->cfg.max_sessions) return max_sessions_error(*st.ctx);
  runtime::session_meta meta;
  meta.id = id;
  caf::actor s = start_session(self, meta, true, place);
  if (st.draining) self->send(s, handover_atom::value);
  return s;
}

/// A session actor ended: forget it; after a crash, restart it from the
/// store with exponential backoff, or mark it failed past the restart limit.
void on_session_down(self_ptr self, const caf::down_msg& d) {
  auto& st = self->state;
  auto it = st.by_addr.find(d.source);
  if (it == st.by_addr.end()) return;
  const std::string id = it->second;
  st.by_addr.erase(it);
  // A retired session's down must not remove a newer session of the same id.
  if (auto l = st.live.find(id); l != st.live.end() && l->second.address() == d.source) st.live.erase(l);
  count_live(st);
  if (!d.reason || d.reason == caf::exit_reason::normal || d.reason == caf::exit_reason::user_shutdown) return;
  auto& times = st.crashes[id];
  const auto now = clock_type::now();
  times.push_back(now);
  while (!times.empty() && now - times.front() > st.ctx->cfg.restart_window) times.pop_front();
  const std::string why = self->system().render(d.reason);
  if (static_cast<int>(times.size()) > st.ctx->cfg.max_restarts) {
    st.failed[id] = "session " + id + " crashed " + std::to_string(times.size()) + " times within " +
                    runtime::format_duration(st.ctx->cfg.restart_window) + " (last: " + why +
                    ") and was stopped; open a new session";
    log(log_level::error, id, "restart limit reached; session marked failed");
    return;
  }
  auto delay = st.ctx->cfg.restart_backoff * (int64_t{1} << std::min<size_t>(times.size() - 1, 10));
  log(log_level::warn, id,
      "session crashed (" + why + "); restarting from the store in " +
          runtime::format_duration(std::chrono::duration_cast<runtime::duration>(delay)));
  st.ctx->metrics->add_session_restart();
  st.ctx->event("session_restart", id, "crashed (" + why + "); restarting from the store");
  self->delayed_send(self, delay, restart_atom::value, id);
}

void restart(self_ptr self, const std::string& id) {
  auto& st = self->state;
  if (st.live.count(id) || st.failed.count(id) || st.draining) return;
  runtime::session_meta meta;
  meta.id = id;
  start_session(self, meta, true);
}

caf::error not_serving_error(const node_context& ctx) {
  if (ctx.cluster->store_down())
    return make_error(brigade_errc::store_unavailable,
                      "the store is unreachable (" + ctx.cluster->not_serving() + "); retry later");
  return session_moved_error(ctx.cluster->not_serving() + "; use another node");
}

/// A new session: stored first (with this node's lease), then spawned. In
/// a cluster a client's open goes to the new id's place (docs/cluster.md,
/// "Placement"), which may be another node; a peer's (`id` given) is
/// created here.
caf::result<caf::message> open(self_ptr self, std::string id, const std::string& system) {
  auto& st = self->state;
  const bool forwarded = !id.empty();
  if (!st.ctx->cluster->serving()) return not_serving_error(*st.ctx);
  if (id.empty()) id = runtime::random_hex(16);
  if (st.cluster && !forwarded) {
    const std::string target = st.ctx->cluster->place(id, st.ctx->cfg.node_name);
    if (target.empty()) return st.draining ? shutting_down_error() : no_place_error(*st.ctx);
    if (target != st.ctx->cfg.node_name)
      return self->delegate(st.cluster, fwd_atom::value, target, open_atom::value, id, system);
  } else if (st.draining) {
    return shutting_down_error();
  }
  if (static_cast<int>(st.live.size() + st.opening.size()) >= st.ctx->cfg.max_sessions)
    return max_sessions_error(*st.ctx);
  if (st.opening.count(id) || st.live.count(id))
    return make_error(brigade_errc::bad_request, "session id " + id + " is being opened already");
  pending_open p;
  p.token = runtime::random_hex(32);
  p.meta.id = id;
  p.meta.token_hash = runtime::sha256_hex(p.token);
  p.meta.model = st.ctx->model_id;
  p.meta.owner = st.ctx->cfg.node_name;
  p.meta.owner_incarnation = st.ctx->cluster->incarnation();
  p.meta.created_ms = runtime::now_ms();
  p.meta.system = system;
  p.rp = self->make_response_promise();
  auto meta = p.meta;
  st.opening[id] = std::move(p);
  caf::actor me = caf::actor_cast<caf::actor>(self);
  st.ctx->store->create(
      meta, [me, id](runtime::store_status s) { caf::anon_send(me, stored_atom::value, id, store_reply{s}); });
  return st.opening[id].rp;
}

void on_created(self_ptr self, const std::string& id, const runtime::store_status& s) {
  auto& st = self->state;
  auto it = st.opening.find(id);
  if (it == st.opening.end()) return;
  if (!s.ok()) {
    it->second.rp.deliver(make_error(brigade_errc::store_unavailable, "cannot create the session: store unavailable (" +
                                                                          s.message() + "); retry later"));
  } else {
    start_session(self, it->second.meta, false);
    log(log_level::info, id, "opened");
    it->second.rp.deliver(id, it->second.token);
  }
  st.opening.erase(it);
}

/// Hands a request to the session's actor (restoring it if needed), or to
/// the session's owner when another live node holds it (known from an
/// earlier restore). `forwarded`: a peer sent it, it is never forwarded again.
template <class... Ts>
caf::result<caf::message> to_session(self_ptr self, const std::string& id, bool forwarded, Ts&&... xs) {
  auto& st = self->state;
  if (!st.ctx->cluster->serving()) return not_serving_error(*st.ctx);
  if (!forwarded && st.cluster && !st.live.count(id)) {
    auto o = st.owners.find(id);
    if (o != st.owners.end() && st.ctx->cluster->reachable(o->second) && !st.ctx->cluster->leaving(o->second))
      return self->delegate(st.cluster, fwd_atom::value, o->second, std::forward<Ts>(xs)...);
  }
  // A draining node takes no session it does not hold; the entry node asks again.
  if (forwarded && st.draining && !st.live.count(id))
    return session_moved_error("session " + id + ": node " + st.ctx->cfg.node_name + " is draining");
  auto s = find(self, id, !forwarded && st.cluster);
  if (!s) return s.error();
  if (forwarded) return self->delegate(*s, peer_atom::value, std::forward<Ts>(xs)...);
  return self->delegate(*s, std::forward<Ts>(xs)...);
}

/// Fault injection: only for a session of this node (never forwarded).
caf::result<caf::message> fault_here(self_ptr self, const std::string& id, const std::string& token) {
  auto s = find(self, id);
  if (!s) return s.error();
  return self->delegate(*s, fault_atom::value, id, token);
}

void remember_owner(self_ptr self, const std::string& id, const std::string& node) {
  auto& owners = self->state.owners;
  if (node.empty()) {
    owners.erase(id);
    return;
  }
  if (owners.size() >= 65536) owners.clear();  // bounded: a miss costs one restore attempt
  owners[id] = node;
}

/// This node was declared dead: every session stops serving at once.
void fence(self_ptr self) {
  auto& st = self->state;
  for (auto& [id, s] : st.live) self->send(s, fence_atom::value);
  st.owners.clear();
}

/// A session that only answers what it was sent (dead, forwarding)
/// retires: requests from now on restore or forward anew, and its b_drain
/// follows every request routed to it so far. by_addr keeps it until its
/// down message.
void retire(self_ptr self, const std::string& id) {
  auto& st = self->state;
  auto s = caf::actor_cast<caf::actor>(self->current_sender());
  if (!s) return;
  if (auto it = st.live.find(id); it != st.live.end() && it->second == s) {
    st.live.erase(it);
    count_live(st);
  }
  self->send(s, drain_atom::value);
}

/// This node drains. In a cluster every session hands over (at once when
/// idle, after its turn otherwise); alone, new work is refused and the
/// sessions end with the node.
void drain(self_ptr self) {
  auto& st = self->state;
  if (st.draining) return;
  st.draining = true;
  if (!st.cluster) return;
  for (auto& [id, s] : st.live) self->send(s, handover_atom::value);
  st.owners.clear();
}

/// A session found its owner elsewhere and hands its queued requests over.
template <class... Ts>
caf::result<caf::message> to_cluster(self_ptr self, Ts&&... xs) {
  if (!self->state.cluster) return make_error(brigade_errc::internal, "forwarding outside a cluster");
  return self->delegate(self->state.cluster, fwd_atom::value, std::forward<Ts>(xs)...);
}

runtime::scaling_params scaling_params_of(const runtime::node_config& c) {
  runtime::scaling_params p;
  p.ttft_target_s = std::chrono::duration<double>(c.ttft_target).count();
  p.min_replicas = c.min_replicas;
  p.max_replicas = c.max_replicas;
  p.interval_s = std::chrono::duration<double>(c.scale_interval).count();
  p.down_window_s = std::chrono::duration<double>(c.scale_down_window).count();
  return p;
}

/// One evaluation of the replica signal: on the members' heartbeat figures
/// in a cluster (every node computes the same), on this node's own alone.
void evaluate_scaling(self_ptr self) {
  auto& st = self->state;
  std::vector<runtime::member_load> members;
  const runtime::load_figures mine = st.ctx->metrics->load();
  if (st.ctx->cluster->enabled()) {
    members = st.ctx->cluster->loads();
    if (members.empty()) {  // no table read yet: the first evaluation waits for it (it starts at the members' count)
      self->delayed_send(self, std::chrono::milliseconds(200), scale_atom::value);
      return;
    }
  } else {
    members.push_back({st.ctx->cfg.node_name, "active", mine});
  }
  const double now = std::chrono::duration<double>(clock_type::now() - st.scale_t0).count();
  const auto d = st.scaler->evaluate(members, now);
  st.ctx->metrics->set_scaling_signal(d.desired, runtime::load_ratio(mine, st.scaler->params().ttft_target_s));
  if (d.changed)
    log(log_level::info, "",
        "replica signal " + std::to_string(d.previous) + " -> " + std::to_string(d.desired) + " (" + d.reason +
            "; the load needs " + std::to_string(d.need.tokens).substr(0, 5) + " nodes for tokens, " +
            std::to_string(d.need.memory).substr(0, 5) + " for KV memory, " + std::to_string(d.need.serving) +
            " serving)");
  self->delayed_send(self, st.ctx->cfg.scale_interval, scale_atom::value);
}

caf::behavior supervisor_fn(self_ptr self, std::shared_ptr<node_context> ctx) {
  using str = const std::string&;
  self->state.ctx = ctx;
  self->state.scaler = std::make_unique<runtime::replica_controller>(scaling_params_of(ctx->cfg));
  ctx->metrics->set_scaling_signal(std::max(1, ctx->cfg.min_replicas), 0);
  self->send(self, scale_atom::value);
  self->set_exit_handler([=](caf::exit_msg& m) {
    // by_addr: the live sessions and retired ones still answering
    for (auto& [addr, id] : self->state.by_addr) self->send_exit(addr, caf::exit_reason::user_shutdown);
    self->quit(m.reason);
  });
  self->set_down_handler([=](caf::down_msg& d) { on_session_down(self, d); });
  return {
      [=](restart_atom, str id) { restart(self, id); },
      [=](scale_atom) { evaluate_scaling(self); },
      [=](open_atom) { return open(self, std::string{}, std::string{}); },
      [=](open_atom, str system) { return open(self, std::string{}, system); },
      [=](peer_atom, open_atom, str id, str system) { return open(self, id, system); },
      [=](fwd_atom, str node, open_atom a, str id, str system) { return to_cluster(self, node, a, id, system); },
      [=](stored_atom, str id, store_reply& s) { on_created(self, id, s.st); },
      [=](chat_atom a, chat_request& req) {
        const std::string id = req.session_id;
        return to_session(self, id, false, a, std::move(req));
      },
      [=](history_atom a, str id, str token) { return to_session(self, id, false, a, id, token); },
      [=](close_atom a, str id, str token) { return to_session(self, id, false, a, id, token); },
      [=](fault_atom, str id, str token) { return fault_here(self, id, token); },
      [=](peer_atom, chat_atom a, chat_request& req) {
        const std::string id = req.session_id;
        return to_session(self, id, true, a, std::move(req));
      },
      [=](peer_atom, history_atom a, str id, str token) { return to_session(self, id, true, a, id, token); },
      [=](peer_atom, close_atom a, str id, str token) { return to_session(self, id, true, a, id, token); },
      [=](fwd_atom, str node, chat_atom a, chat_request& req) { return to_cluster(self, node, a, std::move(req)); },
      [=](fwd_atom, str node, history_atom a, str id, str token) { return to_cluster(self, node, a, id, token); },
      [=](fwd_atom, str node, close_atom a, str id, str token) { return to_cluster(self, node, a, id, token); },
      [=](owner_atom, str id, str node) { remember_owner(self, id, node); },
      [=](retire_atom, str id) { retire(self, id); },
      [=](cluster_atom, caf::actor& c) { self->state.cluster = std::move(c); },
      [=](fence_atom) { fence(self); },
      [=](drain_atom) { drain(self); },
  };
}

}  // namespace

void node_context::event(const char* kind, const std::string& session, std::string detail) const {
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  dash->add_event({now, cfg.node_name, kind, session, std::move(detail)});
}

caf::error no_place_error(const node_context& ctx) {
  return session_moved_error("node " + ctx.cfg.node_name +
                             " reaches no active member of the cluster now (it is joining, or cut off from its "
                             "peers); retry, or use another node");
}

caf::actor spawn_supervisor(caf::actor_system& sys, std::shared_ptr<node_context> ctx) {
  return sys.spawn(supervisor_fn, std::move(ctx));
}

}  // namespace brigade::actors
