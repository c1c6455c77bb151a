#include "actors/cluster.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <openssl/crypto.h>

#include <signal.h>
#include <unistd.h>
#include <map>
#include <set>

#include "actors/messages.hpp"
#include "actors/node_cluster.hpp"
#include "runtime/hashing.hpp"
#include "runtime/log.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {

namespace {

using clock_type = std::chrono::steady_clock;
using runtime::log;
using runtime::log_level;

/// A request forwarded to a peer, failed at once if that peer goes.
struct pending_forward {
  std::string peer;
  std::string session;
  std::function<void(caf::error)> fail;
};

struct peer {
  std::string incarnation;
  std::string address;
  std::string state;
  caf::actor gateway;  // null until connected
  caf::actor pinger;   // its cluster actor (or its gateway, if it does not say)
  bool connecting = false;
  bool lost = false;  // its connection dropped; a reconnect decides whether that is suspicious
  int missed = 0;                    // pings in a row without an answer
  std::string suspicion;             // why it is suspected ("" while it answers)
  clock_type::time_point reported;   // when this node last reported it
  bool reported_once = false;
};

struct cluster_state {
  std::shared_ptr<node_context> ctx;
  std::shared_ptr<runtime::membership> table;
  runtime::member me;
  caf::actor supervisor;
  std::map<std::string, peer> peers;
  std::map<std::string, clock_type::time_point> pinged_by;  // peers that reached this node, when last
  std::map<uint64_t, pending_forward> forwards;
  std::map<caf::actor_addr, uint64_t> relays;  // relay -> its pending forward
  std::map<uint64_t, caf::typed_response_promise<cluster_status>> status_waiting;
  uint64_t next_forward = 1;
  runtime::member_table last;
  bool fenced = false;
  bool beat_pending = false;  // a heartbeat sent and not answered yet
  bool beat_again = false;    // send another as soon as it is answered
  bool announce = false;      // tell the peers to re-read the table after the next heartbeat (active, draining)
  uint64_t heartbeat_gen = 0;
  std::chrono::seconds rejoin_backoff{5};
  std::set<std::string> version_warned;
  double last_tokens = -1;
  clock_type::time_point last_tokens_at;
  static inline const char* name = "brigade.cluster";
};

using self_ptr = caf::stateful_actor<cluster_state>*;

const runtime::node_config& cfg(self_ptr self) { return self->state.ctx->cfg; }

// -- forwarding ---------------------------------------------------------------------

void count_forwards(self_ptr self) { self->state.ctx->cluster->set_forwards(self->state.forwards.size()); }

/// Removes a pending forward; false if it was already failed.
bool take(self_ptr self, uint64_t id) {
  const bool found = self->state.forwards.erase(id) > 0;
  count_forwards(self);
  return found;
}

/// Fails every request forwarded to `name` (it died, left or was replaced).
void fail_forwards(self_ptr self, const std::string& name, const std::string& why) {
  auto& fw = self->state.forwards;
  for (auto it = fw.begin(); it != fw.end();) {
    if (it->second.peer != name) {
      ++it;
      continue;
    }
    self->send(self->state.supervisor, owner_atom::value, it->second.session, std::string{});
    it->second.fail(session_moved_error("session " + it->second.session + ": its node " + name + " " + why));
    it = fw.erase(it);
  }
  count_forwards(self);
}

template <class Result, class... Ts>
caf::result<Result> forward(self_ptr self, const std::string& node, const std::string& session, Ts&&... xs) {
  auto& st = self->state;
  auto it = st.peers.find(node);
  if (it == st.peers.end() || !it->second.gateway)
    return session_moved_error("session " + session + " is owned by node " + node +
                               ", which this node cannot reach now");
  auto rp = self->make_response_promise<Result>();
  const uint64_t id = st.next_forward++;
  st.forwards.emplace(id, pending_forward{node, session, [rp](caf::error e) mutable { rp.deliver(std::move(e)); }});
  count_forwards(self);
  const auto timeout = std::max<runtime::duration>(std::chrono::minutes(10), cfg(self).stall_timeout * 4);
  self->request(it->second.gateway, timeout, peer_atom::value, std::forward<Ts>(xs)...)
      .then(
          [=](Result& r) mutable {
            if (take(self, id)) rp.deliver(std::move(r));
          },
          [=](caf::error& e) mutable {
            if (!take(self, id)) return;
            if (brigade_code(e) == static_cast<uint8_t>(brigade_errc::session_moved))
              self->send(self->state.supervisor, owner_atom::value, session, std::string{});
            rp.deliver(std::move(e));
          });
  return rp;
}

/// A forwarded turn's relay on the entry node: it asks the owner with itself
/// as the token stream's reader, passes each chunk on to the client and each
/// credit back to the owner's session, and answers the client last. Chunks
/// and the result leave one actor for one actor, so they arrive in order
/// (from the owner directly they might not: the client may hold a direct
/// connection to the owner from an earlier failover). The owner's session
/// watches the relay, the relay watches the client: a client that goes
/// cancels its turn on the owner.
struct relay_state {
  caf::actor client;  // the original reply_to
  caf::actor source;  // the owner's session (the sender of the chunks)
  caf::typed_response_promise<turn_result> rp;
  static inline const char* name = "brigade.relay";
};

caf::behavior relay_fn(caf::stateful_actor<relay_state>* self, caf::actor owner, caf::actor supervisor,
                       runtime::duration timeout) {
  self->set_down_handler([=](caf::down_msg& d) {
    if (self->state.client && d.source == self->state.client.address()) self->quit();
  });
  return {
      [=](chat_atom a, chat_request& req) -> caf::result<turn_result> {
        auto& st = self->state;
        st.client = req.reply_to;
        if (st.client) self->monitor(st.client);
        req.reply_to = caf::actor_cast<caf::actor>(self);
        st.rp = self->make_response_promise<turn_result>();
        const std::string session = req.session_id;
        self->request(owner, timeout, peer_atom::value, a, std::move(req))
            .then(
                [=](turn_result& r) {
                  self->state.rp.deliver(std::move(r));
                  self->quit();
                },
                [=](caf::error& e) {
                  if (brigade_code(e) == static_cast<uint8_t>(brigade_errc::session_moved))
                    self->send(supervisor, owner_atom::value, session, std::string{});
                  self->state.rp.deliver(std::move(e));
                  self->quit();
                });
        return st.rp;
      },
      [=](token_chunk& c) {
        self->state.source = caf::actor_cast<caf::actor>(self->current_sender());
        if (self->state.client) self->send(self->state.client, std::move(c));
      },
      [=](credit_atom a, const std::string& id, uint64_t seq, uint32_t n) {
        if (self->state.source) self->send(self->state.source, a, id, seq, n);
      },
      [=](fence_atom, caf::error& e) {  // the cluster actor: the owner died or left
        if (self->state.rp.pending()) self->state.rp.deliver(std::move(e));
        self->quit();
      },
  };
}

/// A chat for another node's session goes through a relay of its own.
caf::result<caf::message> forward_chat(self_ptr self, const std::string& node, chat_request& req) {
  auto& st = self->state;
  auto it = st.peers.find(node);
  if (it == st.peers.end() || !it->second.gateway)
    return session_moved_error("session " + req.session_id + " is owned by node " + node +
                               ", which this node cannot reach now");
  st.ctx->metrics->add_turn_forwarded();
  const auto timeout = std::max<runtime::duration>(std::chrono::minutes(10), cfg(self).stall_timeout * 4);
  caf::actor relay = self->spawn(relay_fn, it->second.gateway, st.supervisor, timeout);
  const uint64_t id = st.next_forward++;
  st.forwards.emplace(id, pending_forward{node, req.session_id, [relay](caf::error e) {
                                            caf::anon_send(relay, fence_atom::value, std::move(e));
                                          }});
  st.relays.emplace(relay.address(), id);
  count_forwards(self);
  self->monitor(relay);
  return self->delegate(relay, chat_atom::value, std::move(req));
}

/// A new session placed on another node: created there with the id chosen
/// here; this node remembers its owner.
caf::result<std::string, std::string> forward_open(self_ptr self, const std::string& node, const std::string& id,
                                                   const std::string& system) {
  auto& st = self->state;
  auto it = st.peers.find(node);
  if (it == st.peers.end() || !it->second.gateway)
    return session_moved_error("node " + node + ", where the new session was placed, cannot be reached now");
  auto rp = self->make_response_promise<std::string, std::string>();
  const uint64_t fid = st.next_forward++;
  st.forwards.emplace(fid, pending_forward{node, id, [rp](caf::error e) mutable { rp.deliver(std::move(e)); }});
  count_forwards(self);
  auto req = system.empty() ? self->request(it->second.gateway, std::chrono::seconds(30), peer_atom::value,
                                            open_atom::value, id)
                            : self->request(it->second.gateway, std::chrono::seconds(30), peer_atom::value,
                                            open_atom::value, id, system);
  req
      .then(
          [=](std::string& sid, std::string& token) mutable {
            if (!take(self, fid)) return;
            self->send(self->state.supervisor, owner_atom::value, sid, node);
            rp.deliver(std::move(sid), std::move(token));
          },
          [=](caf::error& e) mutable {
            if (take(self, fid)) rp.deliver(std::move(e));
          });
  return rp;
}

// -- peers --------------------------------------------------------------------------

/// What sessions and the supervisor read: the peers reached now, the
/// members that drain, and where sessions may be placed (the active members
/// reached, this node while it is active and serving).
void publish_reachable(self_ptr self) {
  auto& st = self->state;
  std::set<std::string> r, leaving;
  for (const auto& [name, p] : st.peers)
    if (p.gateway && p.suspicion.empty()) r.insert(name);
  std::vector<runtime::placement_candidate> candidates;
  for (const auto& m : st.last.members) {
    if (m.name == st.me.name) continue;
    if (m.state == "draining") leaving.insert(m.name);
    if (m.state == "active" && r.count(m.name)) candidates.push_back({m.name, m.capacity});
  }
  if (st.me.state == "active" && !st.fenced) candidates.push_back({st.me.name, st.me.capacity});
  st.ctx->cluster->set_reachable(std::move(r));
  st.ctx->cluster->set_leaving(std::move(leaving));
  st.ctx->cluster->set_candidates(std::move(candidates));
}

/// Forgets the connection to a peer (it died, left, or was replaced).
void drop_peer(self_ptr self, const std::string& name, const std::string& why) {
  auto& st = self->state;
  auto it = st.peers.find(name);
  if (it == st.peers.end()) return;
  if (it->second.gateway) self->demonitor(it->second.gateway);
  st.peers.erase(it);
  fail_forwards(self, name, why);
  publish_reachable(self);
}

void suspect(self_ptr self, const std::string& name, const std::string& why);

void connect_failed(self_ptr self, const std::string& name, const std::string& inc, const std::string& why) {
  auto it = self->state.peers.find(name);
  if (it == self->state.peers.end() || it->second.incarnation != inc) return;
  it->second.connecting = false;
  log(log_level::debug, "", "cannot connect to member " + name + ": " + why);
  if (it->second.lost) suspect(self, name, "its connection was lost and it accepts no new one");
}

void on_connected(self_ptr self, const std::string& name, const std::string& inc, caf::actor gw, caf::actor pinger,
                  const std::string& answer) {
  auto it = self->state.peers.find(name);
  if (it == self->state.peers.end() || it->second.incarnation != inc) return;
  auto& p = it->second;
  p.connecting = false;
  if (answer != inc) {  // another process serves at that address now
    if (p.lost) suspect(self, name, "another process answers at its address");
    return;
  }
  p.gateway = std::move(gw);
  p.pinger = std::move(pinger);
  p.missed = 0;
  p.lost = false;
  if (!p.suspicion.empty() && p.reported_once)
    self->state.table->withdraw(self->state.me, inc, [](runtime::store_status) {});
  p.suspicion.clear();
  p.reported_once = false;
  self->monitor(p.gateway);
  log(log_level::info, "", "connected to member " + name + " at " + p.address);
  publish_reachable(self);
}

void connect(self_ptr self, const std::string& name) {
  auto& p = self->state.peers[name];
  std::string host;
  uint16_t port = 0;
  if (!split_address(p.address, host, port)) {
    log(log_level::warn, "", "member " + name + " advertises an address that is not HOST:PORT: " + p.address);
    return;
  }
  p.connecting = true;
  const std::string inc = p.incarnation;
  self->request(self->system().middleman().actor_handle(), std::chrono::seconds(1), caf::connect_atom::value, host,
                port)
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            auto gw = caf::actor_cast<caf::actor>(ptr);
            if (!gw) return;
            // Pings go straight to the peer's cluster actor (a thread of its
            // own), not through its gateway, which queues behind the node's
            // sessions on the scheduler.
            auto it = self->state.peers.find(name);
            const bool lost = it != self->state.peers.end() && it->second.lost;
            const auto deadline = lost ? std::chrono::milliseconds(300) : std::chrono::milliseconds(1000);
            self->request(gw, deadline, phello_atom::value, self->state.me.name, self->state.me.incarnation)
                .then([=](caf::actor& pinger, std::string& answer) { on_connected(self, name, inc, gw, pinger, answer); },
                      [=](caf::error& e) {
                        if (e == caf::sec::unexpected_message)  // a build without b_phello: ping its gateway
                          return on_connected(self, name, inc, gw, gw, inc);
                        connect_failed(self, name, inc, "no answer to b_phello: " + self->system().render(e));
                      });
          },
          [=](caf::error& e) { connect_failed(self, name, inc, self->system().render(e)); });
}

bool reaches_majority(self_ptr self, std::string& why) {
  auto& st = self->state;
  int active = st.me.state == "active" ? 1 : 0, reached = active;
  for (const auto& m : st.last.members) {
    if (m.name == st.me.name || m.state != "active") continue;
    ++active;
    auto it = st.peers.find(m.name);
    if (it != st.peers.end() && it->second.gateway && it->second.suspicion.empty()) ++reached;
  }
  if (active <= 2 || reached * 2 > active) return true;
  why = "it reaches " + std::to_string(reached) + " of " + std::to_string(active) + " active members";
  return false;
}

void fence(self_ptr self, const std::string& why);

/// Reports a suspected peer (again once its earlier vote may have expired).
void report(self_ptr self, const std::string& name) {
  auto& st = self->state;
  auto it = st.peers.find(name);
  if (it == st.peers.end() || it->second.suspicion.empty() || st.fenced) return;
  auto& p = it->second;
  const auto now = clock_type::now();
  if (p.reported_once && now - p.reported < st.table->options().vote_ttl / 2) return;
  std::string why;
  if (!reaches_majority(self, why)) {
    log(log_level::warn, "", "suspects member " + name + " (" + p.suspicion + ") but may not vote: " + why);
    return;
  }
  p.reported = now;
  if (!p.reported_once) log(log_level::info, "", "suspects member " + name + ": " + p.suspicion + "; reporting it");
  p.reported_once = true;
  const std::string inc = p.incarnation;
  caf::actor me = caf::actor_cast<caf::actor>(self);
  st.table->report(st.me, name, inc, [me, name, inc](runtime::store_result<runtime::membership::verdict> r) {
    caf::anon_send(me, report_atom::value, name, inc,
                   report_reply{std::make_shared<runtime::store_result<runtime::membership::verdict>>(std::move(r))});
  });
}

void on_reported(self_ptr self, const std::string& name, const std::string& inc,
                 runtime::store_result<runtime::membership::verdict>& r) {
  using verdict = runtime::membership::verdict;
  if (!r.ok()) {
    if (r.error().code() == runtime::store_errc::conflict) return fence(self, r.error().message());
    log(log_level::warn, "", "cannot report member " + name + ": " + r.error().message());
    return;
  }
  if (*r == verdict::pending) return;
  self->state.ctx->cluster->add_dead(inc);
  if (*r == verdict::declared) {
    log(log_level::warn, "", "member " + name + " (incarnation " + inc + ") is declared dead");
    // The other members read the table now rather than at their next
    // heartbeat, so whichever node gets one of its sessions next takes it.
    for (const auto& [peer_name, p] : self->state.peers)
      if (p.gateway && peer_name != name) self->send(p.gateway, died_atom::value, name, inc);
  }
  auto it = self->state.peers.find(name);
  if (it != self->state.peers.end() && it->second.incarnation == inc) drop_peer(self, name, "was declared dead");
}

void suspect(self_ptr self, const std::string& name, const std::string& why) {
  auto it = self->state.peers.find(name);
  if (it == self->state.peers.end()) return;
  if (it->second.suspicion.empty()) it->second.suspicion = why;
  publish_reachable(self);
  report(self, name);
}

void ping_peers(self_ptr self) {
  auto& st = self->state;
  const auto deadline = cfg(self).ping_interval;
  for (auto& [name, p] : st.peers) {
    if (!p.gateway) {
      if (!p.suspicion.empty()) report(self, name);  // renews its vote while it stays unreachable
      continue;
    }
    const std::string peer_name = name, inc = p.incarnation;
    self->request(p.pinger ? p.pinger : p.gateway, deadline, ping_atom::value, st.me.name, st.me.incarnation)
        .then(
            [=](std::string& answer) {
              auto it = self->state.peers.find(peer_name);
              if (it == self->state.peers.end() || it->second.incarnation != inc) return;
              if (answer != inc) return suspect(self, peer_name, "another process answers at its address");
              it->second.missed = 0;
              if (!it->second.suspicion.empty()) {
                log(log_level::info, "", "member " + peer_name + " answers again");
                it->second.suspicion.clear();
                if (it->second.reported_once)
                  self->state.table->withdraw(self->state.me, inc, [](runtime::store_status) {});
                it->second.reported_once = false;
                publish_reachable(self);
              }
            },
            [=](caf::error&) {
              auto it = self->state.peers.find(peer_name);
              if (it == self->state.peers.end() || it->second.incarnation != inc) return;
              // A process that did not run itself cannot tell a slow peer from its own stall.
              if (!self->state.ctx->cluster->serving()) return;
              if (++it->second.missed >= cfg(self).ping_misses)
                suspect(self, peer_name, std::to_string(it->second.missed) + " pings in a row unanswered");
            });
  }
}

void on_peer_down(self_ptr self, const caf::down_msg& d) {
  if (auto r = self->state.relays.find(d.source); r != self->state.relays.end()) {  // a relay ended
    take(self, r->second);
    self->state.relays.erase(r);
    return;
  }
  for (auto& [name, p] : self->state.peers) {
    if (!p.gateway || p.gateway.address() != d.source) continue;
    p.gateway = nullptr;
    const std::string n = name;
    // Replies cannot come back over a lost connection: fail what waits now.
    fail_forwards(self, n, "lost its connection to this node");
    // A dead process refuses a new connection at once; a live one (two
    // nodes that dialled each other at the same moment drop one of the two
    // connections) accepts it: suspect only the first.
    // CAF's middleman caches the endpoint's handle until it sees the same
    // death: dial again once it has (a moment later), or the dial would
    // return the dead handle.
    p.lost = true;
    self->delayed_send(self, std::chrono::milliseconds(20), redial_atom::value, n, p.incarnation);
    return;
  }
}

// -- the table ------------------------------------------------------------------------

/// Live members, and how many of them (this node included) reached this
/// node lately.
std::pair<int, int> reach(self_ptr self) {
  auto& st = self->state;
  const auto recent = clock_type::now() - 3 * cfg(self).heartbeat;
  int live = 0, reached = 1;
  for (const auto& m : st.last.members) {
    if (m.state == "dead") continue;
    ++live;
    auto it = st.pinged_by.find(m.name);
    if (m.name != st.me.name && it != st.pinged_by.end() && it->second >= recent) ++reached;
  }
  return {std::max(live, 1), reached};
}

/// The load figures of this node's heartbeat (the node object of docs/cli.md).
std::map<std::string, double> figures(self_ptr self) {
  auto& st = self->state;
  auto f = st.ctx->metrics->figures();
  const double tokens = f["tokens_generated_total"];
  const auto now = clock_type::now();
  double rate = 0;
  if (st.last_tokens >= 0) {
    const double dt = std::chrono::duration<double>(now - st.last_tokens_at).count();
    if (dt > 0) rate = (tokens - st.last_tokens) / dt;
  }
  st.last_tokens = tokens;
  st.last_tokens_at = now;
  f.erase("tokens_generated_total");
  f["tokens_per_second"] = rate;
  // Why a joining node is not active yet (cluster status shows it).
  const auto [live, reached] = reach(self);
  f["members_live"] = live;
  f["members_reaching"] = reached;
  return f;
}

/// One heartbeat now (the timer's, or an extra one to hear the table sooner).
void send_heartbeat(self_ptr self) {
  auto& st = self->state;
  st.beat_pending = true;
  st.me.load = figures(self);
  caf::actor me = caf::actor_cast<caf::actor>(self);
  const auto sent = clock_type::now();
  st.table->heartbeat(st.me, [me, sent](runtime::store_result<runtime::member_table> r) {
    caf::anon_send(me, table_atom::value,
                   table_reply{std::make_shared<runtime::store_result<runtime::member_table>>(std::move(r)), sent});
  });
}

void heartbeat(self_ptr self, uint64_t gen) {
  auto& st = self->state;
  if (gen != st.heartbeat_gen || st.fenced) return;
  if (st.beat_pending) st.ctx->metrics->set_store_up(false);  // no answer within a heartbeat period
  send_heartbeat(self);
  self->delayed_send(self, cfg(self).heartbeat, hbeat_atom::value, gen);
}

/// Joining -> active once a majority of the live members reached this node.
void maybe_activate(self_ptr self) {
  auto& st = self->state;
  if (st.me.state != "joining") return;
  const auto [live, reached] = reach(self);
  if (reached * 2 <= live) return;
  st.me.state = "active";
  log(log_level::info, "", "active in cluster " + st.ctx->cluster->cluster() + " (" + std::to_string(reached) +
                               " of " + std::to_string(live) + " members reach it)");
  st.announce = true;  // and the peers right after, so they place sessions here at once
  self->send(self, hbeat_atom::value, ++st.heartbeat_gen);  // tell the table now
  publish_reachable(self);
}

/// The members' scaling figures, for the supervisor's replica signal.
void publish_loads(self_ptr self) {
  std::vector<runtime::member_load> loads;
  for (const auto& m : self->state.last.members) {
    if (m.version != protocol_version) continue;  // another release: its figures may mean something else
    runtime::member_load l;
    l.name = m.name;
    l.state = m.state;
    l.f = runtime::get_load_figures(m.load);
    loads.push_back(std::move(l));
  }
  self->state.ctx->cluster->set_loads(std::move(loads));
}

/// The members of a table read as the node objects of docs/cli.md, with
/// their heartbeat ages on Redis' clock.
std::vector<runtime::dash_node> member_objects(const runtime::member_table& t) {
  std::vector<runtime::dash_node> out;
  for (const auto& m : t.members) {
    runtime::dash_node n;
    n.name = m.name;
    n.address = m.address;
    n.state = m.state;
    n.model = m.model;
    n.version = m.version;
    n.capacity = m.capacity;
    n.heartbeat_age_seconds = static_cast<double>(t.now_ms - m.heartbeat_ms) / 1000.0;
    n.figures = m.load;
    out.push_back(std::move(n));
  }
  return out;
}

/// The table for the dashboard's sampler (runtime/dashboard.hpp).
void publish_members(self_ptr self) { self->state.ctx->cluster->set_members(member_objects(self->state.last)); }

void count_states(self_ptr self) {
  std::map<std::string, double> n{{"joining", 0}, {"active", 0}, {"draining", 0}, {"dead", 0}};
  for (const auto& m : self->state.last.members) n[m.state] += 1;
  for (const auto& [state, count] : n) self->state.ctx->metrics->set_cluster_nodes(state, count);
}

void track_member(self_ptr self, const runtime::member& m) {
  auto& st = self->state;
  if (m.version != protocol_version) {
    if (st.version_warned.insert(m.name + m.incarnation).second)
      log(log_level::warn, "", "member " + m.name + " speaks protocol version " + std::to_string(m.version) +
                                   " and this node " + std::to_string(protocol_version) +
                                   "; this node does not forward to it (run one release per cluster)");
    return;
  }
  auto it = st.peers.find(m.name);
  if (it != st.peers.end() && it->second.incarnation != m.incarnation) {
    drop_peer(self, m.name, "was replaced by another process");
    it = st.peers.end();
  }
  peer& p = st.peers[m.name];
  p.incarnation = m.incarnation;
  p.address = m.address;
  p.state = m.state;
  if (!p.gateway && !p.connecting) connect(self, m.name);
}

void on_table(self_ptr self, runtime::store_result<runtime::member_table>& r, clock_type::time_point sent) {
  auto& st = self->state;
  st.beat_pending = false;
  if (st.beat_again && !st.fenced) {
    st.beat_again = false;
    send_heartbeat(self);
  }
  if (st.fenced) return;
  st.ctx->cluster->set_store_down(!r.ok() && r.error().code() == runtime::store_errc::io);
  if (!r.ok()) {
    st.ctx->metrics->set_store_up(false);
    if (r.error().code() == runtime::store_errc::conflict) return fence(self, r.error().message());
    log(log_level::warn, "", "membership heartbeat failed: " + r.error().message());
    return;
  }
  st.ctx->metrics->set_store_up(true);
  st.ctx->cluster->beat(st.table->options().expiry, sent);
  if (st.announce) {
    st.announce = false;
    for (const auto& [name, p] : st.peers)
      if (p.gateway) self->send(p.gateway, died_atom::value, st.me.name, st.me.incarnation);
  }
  st.last = std::move(*r);
  publish_loads(self);
  publish_members(self);
  std::set<std::string> dead, present;
  for (const auto& m : st.last.members) {
    if (m.name == st.me.name) continue;
    present.insert(m.name);
    if (m.state == "dead") {
      dead.insert(m.incarnation);
      auto it = st.peers.find(m.name);
      if (it != st.peers.end() && it->second.incarnation == m.incarnation) drop_peer(self, m.name, "is dead");
      continue;
    }
    track_member(self, m);
  }
  std::vector<std::string> gone;
  for (const auto& [name, p] : st.peers)
    if (!present.count(name)) gone.push_back(name);
  for (const auto& name : gone) drop_peer(self, name, "left the cluster");
  st.ctx->cluster->set_dead(std::move(dead));
  count_states(self);
  maybe_activate(self);
  publish_reachable(self);
}

// -- declared dead, rejoining -------------------------------------------------------------

void fence(self_ptr self, const std::string& why) {
  auto& st = self->state;
  if (st.fenced) return;
  st.fenced = true;
  st.ctx->cluster->set_serving(false);
  log(log_level::error, "",
      why + ": this node stops serving every session and rejoins in " + std::to_string(st.rejoin_backoff.count()) +
          "s with a new incarnation");
  self->send(st.supervisor, fence_atom::value);
  std::vector<std::string> names;
  for (const auto& [name, p] : st.peers) names.push_back(name);
  for (const auto& name : names) drop_peer(self, name, "is out of reach: this node was declared dead");
  st.pinged_by.clear();
  self->delayed_send(self, st.rejoin_backoff, rejoin_atom::value);
}

void rejoin(self_ptr self) {
  auto& st = self->state;
  if (st.ctx->cluster->draining()) return;  // it leaves anyway
  st.me.incarnation = runtime::random_hex(8);
  st.me.state = "joining";
  caf::actor me = caf::actor_cast<caf::actor>(self);
  st.table->join(st.me, "", [me](runtime::store_status s, const runtime::member&) {
    caf::anon_send(me, rejoin_atom::value, store_reply{std::move(s)});
  });
}

void on_rejoined(self_ptr self, const runtime::store_status& s) {
  auto& st = self->state;
  if (s.code() == runtime::store_errc::conflict) {
    // Another live process serves under this name now: this one is not
    // needed; it ends as on SIGTERM (drain, exit 0).
    log(log_level::error, "", s.message() + ": this process shuts down");
    ::kill(::getpid(), SIGTERM);  // process-directed: `serve` waits for it with sigwait
    return;
  }
  if (!s.ok()) {
    st.rejoin_backoff = std::min(st.rejoin_backoff * 2, std::chrono::seconds(60));
    log(log_level::warn, "",
        "cannot rejoin: " + s.message() + "; retrying in " + std::to_string(st.rejoin_backoff.count()) + "s");
    self->delayed_send(self, st.rejoin_backoff, rejoin_atom::value);
    return;
  }
  st.ctx->cluster->set_incarnation(st.me.incarnation);
  st.ctx->cluster->beat(st.table->options().expiry);
  st.ctx->cluster->reset_tick();
  st.fenced = false;
  st.ctx->cluster->set_serving(true);
  st.rejoin_backoff = std::chrono::seconds(5);
  log(log_level::info, "", "rejoined as incarnation " + st.me.incarnation);
  self->send(self, hbeat_atom::value, ++st.heartbeat_gen);
}

// -- drain ------------------------------------------------------------------------------

/// This node drains: `draining` in the table at once, and the peers re-read
/// it as soon as it is written, so they stop placing sessions here.
void start_drain(self_ptr self) {
  auto& st = self->state;
  if (st.me.state == "draining") return;
  st.me.state = "draining";
  st.announce = true;
  publish_reachable(self);
  self->send(self, hbeat_atom::value, ++st.heartbeat_gen);
}

/// The admin token of `cluster drain`, compared in constant time.
caf::error check_admin(const runtime::node_config& c, const std::string& token) {
  if (c.admin_token.empty())
    return make_error(brigade_errc::unauthorized, "node " + c.node_name +
                                                      " has no admin token and refuses drains; start it with "
                                                      "--admin-token-file FILE");
  const std::string a = runtime::sha256_hex(c.admin_token), b = runtime::sha256_hex(token);
  if (CRYPTO_memcmp(a.data(), b.data(), a.size()) != 0)
    return make_error(brigade_errc::unauthorized, "node " + c.node_name +
                                                      " refused the drain: the admin token is wrong (use the file "
                                                      "given to the nodes as --admin-token-file)");
  return {};
}

/// `cluster drain NODE`: checked here, then done here or passed to NODE
/// (which checks the token again); a peer's request is not passed on.
caf::result<caf::message> drain_request(self_ptr self, const std::string& node, const std::string& token,
                                       bool from_peer) {
  auto& st = self->state;
  if (auto err = check_admin(cfg(self), token)) return err;
  if (node == st.me.name) {
    log(log_level::warn, "", "drain requested (cluster drain): this node hands its sessions over and leaves");
    ::kill(::getpid(), SIGTERM);  // the same path as SIGTERM: `serve` waits for it with sigwait
    return caf::make_message("node " + node + " drains");
  }
  if (from_peer) return make_error(brigade_errc::bad_request, "this node is " + st.me.name + ", not " + node);
  auto it = st.peers.find(node);
  if (it == st.peers.end())
    return make_error(brigade_errc::bad_request, "cluster " + st.ctx->cluster->cluster() + " has no live member named " +
                                                     node + "; `brigade cluster status` lists them");
  if (!it->second.gateway)
    return session_moved_error("member " + node + " cannot be reached from node " + st.me.name +
                               " now; ask another node");
  return self->delegate(it->second.gateway, peer_atom::value, drainreq_atom::value, node, token);
}

// -- cluster status ---------------------------------------------------------------------

cluster_status status_of(const std::string& cluster, const runtime::member_table& t) {
  cluster_status out;
  out.cluster = cluster;
  for (const auto& n : member_objects(t)) out.nodes.push_back(to_node_status(n));
  std::sort(out.nodes.begin(), out.nodes.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

caf::result<cluster_status> status(self_ptr self) {
  auto& st = self->state;
  const uint64_t id = st.next_forward++;
  st.status_waiting.emplace(id, self->make_response_promise<cluster_status>());
  caf::actor me = caf::actor_cast<caf::actor>(self);
  st.table->table([me, id](runtime::store_result<runtime::member_table> r) {
    caf::anon_send(me, status_atom::value, id,
                   table_reply{std::make_shared<runtime::store_result<runtime::member_table>>(std::move(r)), {}});
  });
  return st.status_waiting[id];
}

void on_status(self_ptr self, uint64_t id, runtime::store_result<runtime::member_table>& r) {
  auto& st = self->state;
  auto it = st.status_waiting.find(id);
  if (it == st.status_waiting.end()) return;
  if (r.ok())
    it->second.deliver(status_of(st.ctx->cluster->cluster(), *r));
  else
    it->second.deliver(make_error(brigade_errc::store_unavailable,
                                  "cannot read the membership table: " + r.error().message() + "; retry later"));
  st.status_waiting.erase(it);
}

/// The ping timer: notes whether this process stood still, pings the peers.
void on_tick(self_ptr self) {
  const auto window =
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg(self).ping_interval) * std::max(cfg(self).ping_misses, 2);
  if (self->state.ctx->cluster->tick(window) && !self->state.fenced) {
    log(log_level::warn, "", "this process did not run for more than " + std::to_string(window.count()) +
                                 " ms; it serves again once the membership table says it is alive");
    send_heartbeat(self);
  }
  ping_peers(self);
  self->delayed_send(self, cfg(self).ping_interval, tick_atom::value);
}

caf::behavior cluster_fn(self_ptr self, std::shared_ptr<node_context> ctx, std::shared_ptr<runtime::membership> table,
                         runtime::member me, caf::actor supervisor) {
  using str = const std::string&;
  auto& st = self->state;
  st.ctx = ctx;
  st.table = std::move(table);
  st.me = std::move(me);
  st.supervisor = std::move(supervisor);
  st.ctx->cluster->beat(st.table->options().expiry);  // the join just succeeded
  st.ctx->cluster->reset_tick();
  self->set_down_handler([=](caf::down_msg& d) { on_peer_down(self, d); });
  self->send(self, hbeat_atom::value, st.heartbeat_gen);
  self->send(self, tick_atom::value);
  return {
      [=](hbeat_atom, uint64_t gen) { heartbeat(self, gen); },
      [=](table_atom, table_reply& r) { on_table(self, *r.r, r.sent); },
      [=](tick_atom) { on_tick(self); },
      [=](report_atom, str name, str inc, report_reply& r) { on_reported(self, name, inc, *r.r); },
      [=](rejoin_atom) { rejoin(self); },
      [=](rejoin_atom, store_reply& s) { on_rejoined(self, s.st); },
      [=](phello_atom, str name, str) -> caf::result<caf::actor, std::string> {
        self->state.pinged_by[name] = clock_type::now();
        return {caf::actor_cast<caf::actor>(self), self->state.me.incarnation};
      },
      [=](ping_atom, str name, str) -> std::string {
        self->state.pinged_by[name] = clock_type::now();
        maybe_activate(self);
        return self->state.me.incarnation;
      },
      [=](redial_atom, str name, str inc) {
        auto it = self->state.peers.find(name);
        if (it != self->state.peers.end() && it->second.incarnation == inc && !it->second.gateway &&
            !it->second.connecting)
          connect(self, name);
      },
      [=](died_atom, str, str) {
        if (self->state.fenced) return;
        if (self->state.beat_pending)
          self->state.beat_again = true;  // the table read in flight may predate the death
        else
          send_heartbeat(self);
      },
      [=](cluster_atom) { return status(self); },
      [=](status_atom, uint64_t id, table_reply& r) { on_status(self, id, *r.r); },
      [=](drain_atom) { start_drain(self); },
      [=](drainreq_atom, str node, str token) { return drain_request(self, node, token, false); },
      [=](peer_atom, drainreq_atom, str node, str token) { return drain_request(self, node, token, true); },
      [=](fwd_atom, str node, open_atom, str id, str system) { return forward_open(self, node, id, system); },
      [=](fwd_atom, str node, chat_atom, chat_request& req) { return forward_chat(self, node, req); },
      [=](fwd_atom, str node, stateless_atom a, stateless_request& req) {
        self->state.ctx->metrics->add_turn_forwarded();
        return forward<turn_result>(self, node, std::string("(stateless)"), a, std::move(req));
      },
      [=](fwd_atom, str node, history_atom a, str id, str token) {
        return forward<std::vector<turn_record>>(self, node, id, a, id, token);
      },
      [=](fwd_atom, str node, close_atom a, str id, str token) { return forward<bool>(self, node, id, a, id, token); },
  };
}

}  // namespace

caf::actor spawn_cluster(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                         std::shared_ptr<runtime::membership> table, runtime::member me, caf::actor supervisor) {
  // Detached (a thread of its own): pings are answered and timers fire on
  // time even when the scheduler's threads are busy with the sessions.
  return sys.spawn<caf::detached>(cluster_fn, std::move(ctx), std::move(table), std::move(me), std::move(supervisor));
}

}  // namespace brigade::actors
