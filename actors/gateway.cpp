#include "actors/gateway.hpp"

#include <caf/all.hpp>

#include <cmath>

#include "actors/messages.hpp"
#include "actors/oneshot.hpp"
#include "runtime/hashing.hpp"
#include "kernels/model/unicode.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {

namespace {

struct gateway_state {
  std::shared_ptr<node_context> ctx;
  caf::actor supervisor;
  caf::actor cluster;  // null outside a cluster
  bool refusing = false;  // draining alone, or a cluster drain's last step: refuse new work
  static inline const char* name = "brigade.gateway";
};

using self_ptr = caf::stateful_actor<gateway_state>*;

bool is_hex(const std::string& s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

caf::error bad(const std::string& sentence) { return make_error(brigade_errc::bad_request, sentence); }

/// The first problem with a chat request, as a sentence, or none.
caf::error validate(const gateway_state& st, const chat_request& r) {
  if (!is_hex(r.session_id, 32) || !is_hex(r.token, 64)) return unknown_session_error();
  if (r.seq == 0 && r.idempotency_key.empty())
    return bad("seq must be 1 or more (the first turn of a session is seq 1)");
  if (r.idempotency_key.size() > 255) return bad("the idempotency key is longer than 255 bytes; use a shorter one");
  if (!unicode::valid_utf8(r.idempotency_key)) return bad("the idempotency key is not valid UTF-8");
  if (r.text.empty()) return bad("the message is empty; send some text");
  if (static_cast<int64_t>(r.text.size()) > st.ctx->cfg.max_message_bytes)
    return bad("the message has " + std::to_string(r.text.size()) + " bytes, more than the limit of " +
               std::to_string(st.ctx->cfg.max_message_bytes) + "; shorten it");
  if (!unicode::valid_utf8(r.text)) return bad("the message is not valid UTF-8; send UTF-8 text");
  if (auto s = validate(r.sampling); !s) return bad(s.message());
  if (!r.reply_to) return bad("the request has no reply_to actor for the token stream");
  return {};
}

caf::error check_ids(const std::string& id, const std::string& token) {
  if (!is_hex(id, 32) || !is_hex(token, 64)) return unknown_session_error();
  return {};
}

caf::result<uint32_t> hello(uint32_t version) {
  if (version != protocol_version)
    return make_error(brigade_errc::version_mismatch, "this client speaks protocol version " + std::to_string(version) +
                                                          " but the node speaks " + std::to_string(protocol_version) +
                                                          "; use a brigade client of the same release");
  return protocol_version;
}

caf::error check_system(const gateway_state& st, const std::string& system) {
  if (static_cast<int64_t>(system.size()) > st.ctx->cfg.max_message_bytes)
    return bad("the system prompt has " + std::to_string(system.size()) + " bytes, more than the limit of " +
               std::to_string(st.ctx->cfg.max_message_bytes) + " (max-message-bytes); shorten it");
  if (!unicode::valid_utf8(system)) return bad("the system prompt is not valid UTF-8; send UTF-8 text");
  return {};
}

caf::result<caf::message> open(self_ptr self, const std::string& system) {
  if (auto err = check_system(self->state, system)) return err;
  if (self->state.refusing) return shutting_down_error();
  return self->delegate(self->state.supervisor, open_atom::value, system);
}

caf::result<caf::message> peer_open(self_ptr self, const std::string& id, const std::string& system) {
  if (!is_hex(id, 32)) return bad("a peer asked to open a session with a malformed id");
  if (auto err = check_system(self->state, system)) return err;
  if (self->state.refusing) return shutting_down_error();
  return self->delegate(self->state.supervisor, peer_atom::value, open_atom::value, id, system);
}

caf::result<caf::message> chat(self_ptr self, chat_atom a, chat_request& req) {
  auto& st = self->state;
  if (auto err = validate(st, req)) {
    st.ctx->metrics->add_rejected(
        brigade_code(err) == static_cast<uint8_t>(brigade_errc::unauthorized) ? "unauthorized" : "bad_request");
    return err;
  }
  if (st.refusing) {
    st.ctx->metrics->add_rejected("shutting_down");
    return shutting_down_error();
  }
  return self->delegate(st.supervisor, a, std::move(req));
}

/// A request a peer forwarded: checked like a client's, never forwarded again.
caf::result<caf::message> peer_chat(self_ptr self, chat_request& req) {
  auto& st = self->state;
  if (auto err = validate(st, req)) return err;
  if (st.refusing) return shutting_down_error();
  return self->delegate(st.supervisor, peer_atom::value, chat_atom::value, std::move(req));
}

template <class Atom>
caf::result<caf::message> peer_by_id(self_ptr self, Atom a, const std::string& id, const std::string& token) {
  if (auto err = check_ids(id, token)) return err;
  return self->delegate(self->state.supervisor, peer_atom::value, a, id, token);
}

/// Node-internal messages are obeyed only when they come from this node's
/// own actors (the gateway is published: anyone may send it anything).
bool from_this_node(self_ptr self) {
  const auto& sender = self->current_sender();
  return sender && sender->node() == self->node();
}

cluster_status single_node_status(const node_context& ctx) {
  cluster_status out;
  for (const auto& d : ctx.dash->snapshot().nodes) out.nodes.push_back(to_node_status(d));
  return out;
}

caf::error not_clustered() {
  return make_error(brigade_errc::bad_request,
                    "this node is not in a cluster (its store is memory); start nodes with --store redis://...");
}

/// history, close and fault: well-formed ids go on to the supervisor.
template <class Atom>
caf::result<caf::message> by_id(self_ptr self, Atom a, const std::string& id, const std::string& token) {
  if (auto err = check_ids(id, token)) return err;
  return self->delegate(self->state.supervisor, a, id, token);
}

/// A stateless request a full peer passed here: checked like a client's,
/// run once here (never passed on again).
caf::result<caf::message> peer_stateless(self_ptr self, stateless_request& r) {
  auto& st = self->state;
  if (r.roles.size() != r.contents.size() || (r.raw ? r.prompt.empty() : r.roles.empty()))
    return bad("a peer passed on a malformed stateless request");
  size_t bytes = r.prompt.size();
  for (size_t i = 0; i < r.roles.size(); ++i) {
    if (r.roles[i] != "system" && r.roles[i] != "user" && r.roles[i] != "assistant")
      return bad("a peer passed on a message with the role '" + r.roles[i].substr(0, 16) + "'");
    if (!unicode::valid_utf8(r.contents[i])) return bad("a peer passed on a message that is not valid UTF-8");
    bytes += r.contents[i].size();
  }
  if (!unicode::valid_utf8(r.prompt)) return bad("a peer passed on a prompt that is not valid UTF-8");
  if (static_cast<int64_t>(bytes) > st.ctx->cfg.api_max_body) return bad("a peer passed on a request over api-max-body");
  if (auto s = validate(r.sampling); !s) return bad(s.message());
  if (!r.reply_to) return bad("the request has no reply_to actor for the token stream");
  if (st.refusing || st.ctx->cluster->draining()) return shutting_down_error();
  caf::actor worker = spawn_oneshot(self->system(), st.ctx, caf::actor_cast<caf::actor>(self));
  return self->delegate(worker, oneshot_atom::value, from_wire(std::move(r)));
}

/// This node's API found its engine full: another active member runs it.
caf::result<caf::message> pass_on_stateless(self_ptr self, stateless_request& r) {
  auto& st = self->state;
  const std::string& me = st.ctx->cfg.node_name;
  // A weighted random member other than this one (a fresh key each time).
  const std::string target = st.cluster ? st.ctx->cluster->place_elsewhere(runtime::random_hex(8), me) : "";
  if (target.empty())
    return make_error(brigade_errc::overloaded,
                      "node busy, and no other active member to take the request; retry after about 1s");
  return self->delegate(st.cluster, fwd_atom::value, target, stateless_atom::value, std::move(r));
}

caf::behavior gateway_fn(self_ptr self, std::shared_ptr<node_context> ctx, caf::actor supervisor) {
  using str = const std::string&;
  self->state.ctx = ctx;
  self->state.supervisor = supervisor;
  return {
      [=](hello_atom, uint32_t version) { return hello(version); },
      [=](open_atom) { return open(self, std::string{}); },
      [=](open_atom, str system) { return open(self, system); },
      [=](chat_atom a, chat_request& req) { return chat(self, a, req); },
      [=](history_atom a, str id, str token) { return by_id(self, a, id, token); },
      [=](close_atom a, str id, str token) { return by_id(self, a, id, token); },
      [=](fault_atom a, str id, str token) { return by_id(self, a, id, token); },
      [=](peer_atom, chat_atom, chat_request& req) { return peer_chat(self, req); },
      [=](peer_atom, history_atom a, str id, str token) { return peer_by_id(self, a, id, token); },
      [=](peer_atom, close_atom a, str id, str token) { return peer_by_id(self, a, id, token); },
      [=](whois_atom) { return caf::make_message(self->state.ctx->cfg.node_name, self->state.ctx->cluster->incarnation()); },
      [=](phello_atom a, str name, str inc) -> caf::result<caf::message> {
        if (!self->state.cluster) return not_clustered();
        return self->delegate(self->state.cluster, a, name, inc);
      },
      [=](ping_atom a, str name, str inc) -> caf::result<caf::message> {
        if (!self->state.cluster) return not_clustered();
        return self->delegate(self->state.cluster, a, name, inc);
      },
      [=](died_atom a, str name, str inc) {
        if (self->state.cluster) self->send(self->state.cluster, a, name, inc);
      },
      [=](cluster_atom a) -> caf::result<caf::message> {
        // A single node (memory store) answers with itself, as the
        // dashboard's sampler last saw it (at most a second old).
        if (!self->state.ctx->cluster->enabled()) return caf::make_message(single_node_status(*self->state.ctx));
        if (!self->state.cluster)
          return make_error(brigade_errc::session_moved,
                            "this node has not joined its cluster yet; retry in a moment, or ask another node");
        return self->delegate(self->state.cluster, a);
      },
      [=](cluster_atom, caf::actor& c) {
        if (from_this_node(self)) self->state.cluster = std::move(c);
      },
      [=](drain_atom a) {
        // In a cluster, work still arrives and goes on to active nodes;
        // alone, new work is refused from now on.
        if (!from_this_node(self)) return;
        if (!self->state.cluster) self->state.refusing = true;
        self->send(self->state.supervisor, a);
        if (self->state.cluster) self->send(self->state.cluster, a);
      },
      [=](drain_atom, close_atom) {
        if (from_this_node(self)) self->state.refusing = true;
      },
      [=](peer_atom, open_atom, str id) { return peer_open(self, id, std::string{}); },
      [=](peer_atom, stateless_atom, stateless_request& r) { return peer_stateless(self, r); },
      [=](fwd_atom, stateless_atom, stateless_request& r) -> caf::result<caf::message> {
        if (!from_this_node(self)) return bad("only this node's HTTP API passes stateless requests on");
        return pass_on_stateless(self, r);
      },
      [=](peer_atom, open_atom, str id, str system) { return peer_open(self, id, system); },
      [=](drainreq_atom a, str node, str token) -> caf::result<caf::message> {
        if (!self->state.cluster) return not_clustered();
        return self->delegate(self->state.cluster, a, node, token);
      },
      [=](peer_atom p, drainreq_atom a, str node, str token) -> caf::result<caf::message> {
        if (!self->state.cluster) return not_clustered();
        return self->delegate(self->state.cluster, p, a, node, token);
      },
  };
}

}  // namespace

caf::actor spawn_gateway(caf::actor_system& sys, std::shared_ptr<node_context> ctx, caf::actor supervisor) {
  return sys.spawn(gateway_fn, std::move(ctx), std::move(supervisor));
}

void set_gateway_cluster(caf::actor_system& sys, caf::actor gateway, caf::actor cluster) {
  caf::scoped_actor self{sys};
  self->send(gateway, cluster_atom::value, std::move(cluster));
}

void drain_gateway(caf::actor_system& sys, caf::actor gateway) {
  caf::scoped_actor self{sys};
  self->send(gateway, drain_atom::value);
}

void close_gateway(caf::actor_system& sys, caf::actor gateway) {
  caf::scoped_actor self{sys};
  self->send(gateway, drain_atom::value, close_atom::value);
}

}  // namespace brigade::actors
