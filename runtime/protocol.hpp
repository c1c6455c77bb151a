// The wire protocol between clients and nodes, and between actors on a node:
// message atoms, message types (registered for BASP by `register_types`),
// the protocol version exchanged at connect, and brigade's error codes.
//
// Every remote call carries data in these structs; their registered names
// are their wire identity, so renaming one is a protocol change (bump
// `protocol_version`). Errors reach clients as caf::error in category
// "brigade" whose context is one sentence naming the cause and what to do.
#pragma once

#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/engine/sampling.hpp"
#include "runtime/dashboard.hpp"
#include "runtime/turn_record.hpp"

namespace brigade {

/// Bumped on any incompatible change of the types below. 2: chat_request
/// gained `idempotency_key` (the HTTP API's Idempotency-Key).
constexpr uint32_t protocol_version = 2;

// Wire atoms: the verbs clients send to a node's gateway (at most 10
// characters; their text is their wire identity). Node-internal atoms are
// in actors/messages.hpp.
using hello_atom = caf::atom_constant<caf::atom("b_hello")>;      // (hello, u32 version) -> u32 version
using open_atom = caf::atom_constant<caf::atom("b_open")>;        // (open[, system prompt]) -> (session id, token)
using chat_atom = caf::atom_constant<caf::atom("b_chat")>;        // (chat, chat_request) -> turn_result
using history_atom = caf::atom_constant<caf::atom("b_history")>;  // (history, id, token) -> [turn_record]
using close_atom = caf::atom_constant<caf::atom("b_close")>;      // (close, id, token) -> bool
using credit_atom = caf::atom_constant<caf::atom("b_credit")>;    // (credit, id, seq, u32 n): n more chunks
using fault_atom = caf::atom_constant<caf::atom("b_fault")>;      // (fault, id, token): crash (fault injection only)
using cluster_atom = caf::atom_constant<caf::atom("b_cluster")>;  // (cluster) -> cluster_status
using drainreq_atom = caf::atom_constant<caf::atom("b_drainreq")>;  // (drainreq, node, admin token) -> sentence
// Between the nodes of a cluster (docs/cluster.md):
// (peer, chat|history|close|open|drainreq, ...): forwarded, never again
using peer_atom = caf::atom_constant<caf::atom("b_peer")>;
using ping_atom = caf::atom_constant<caf::atom("b_ping")>;    // (ping, name, incarnation) -> incarnation
using whois_atom = caf::atom_constant<caf::atom("b_whois")>;  // (whois) -> (name, incarnation)
using phello_atom = caf::atom_constant<caf::atom("b_phello")>;  // (phello, name, inc) -> (cluster actor, inc)
// (died, name, incarnation): a member died or drains: re-read the table now
using died_atom = caf::atom_constant<caf::atom("b_died")>;
// (peer, stateless, stateless_request) -> turn_result: an HTTP API request
// whose entry node was full, run here once and stored nowhere
using stateless_atom = caf::atom_constant<caf::atom("b_stless")>;

/// brigade's error codes (category "brigade"); each has a one-line meaning.
enum class brigade_errc : uint8_t {
  overloaded = 1,     ///< queues are full; retry after the hint
  unauthorized,       ///< unknown session or wrong token (deliberately indistinguishable)
  bad_request,        ///< the request itself is invalid (sizes, UTF-8, parameters)
  seq_gap,            ///< the seq skips a turn; send the next seq after the last committed one
  turn_in_progress,   ///< the session is already running a turn
  store_unavailable,  ///< the store failed; the turn was not saved
  context_full,       ///< the conversation no longer fits the model's context (policy: refuse)
  stalled,            ///< the client stopped reading; its turn was cancelled
  session_failed,     ///< the session crashed too often and was stopped
  version_mismatch,   ///< client and node speak different protocol versions
  shutting_down,      ///< the node is draining; retry on another node
  engine_failed,      ///< the engine failed during the turn; retryable
  internal,           ///< a bug; the message says where
  session_crashed,    ///< the session's actor crashed during the turn; it restarts from the store, retry
  session_moved,      ///< another node holds the session's ownership lease; retry after the hint
};

const char* to_string(brigade_errc c);

inline caf::error make_error(brigade_errc x, std::string sentence = {}) {
  return {static_cast<uint8_t>(x), caf::atom("brigade"), caf::make_message(std::move(sentence))};
}

// Errors said in more than one place, each made by one function.
/// unauthorized: the session does not exist or the token is wrong (never which).
caf::error unknown_session_error();
/// shutting_down: the node is draining.
caf::error shutting_down_error();
/// session_moved: another node holds the lease (`why` says which, for how long).
caf::error session_moved_error(const std::string& why);

/// The code of a brigade error, or 0 for other errors.
uint8_t brigade_code(const caf::error& e);
/// The sentence of an error (brigade's context, or CAF's rendering).
std::string error_sentence(caf::actor_system& sys, const caf::error& e);

/// Per-turn sampling (kernels/engine/sampling.hpp) on the wire: registered
/// as "brigade::sampling_spec", fields in this order.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sampling_params& x) {
  return f(caf::meta::type_name("sampling_spec"), x.temperature, x.top_k, x.top_p, x.seed, x.seed_set, x.max_tokens,
           x.stop);
}

struct chat_request {
  std::string session_id;
  std::string token;
  uint64_t seq = 0;
  std::string text;
  sampling_params sampling;
  caf::actor reply_to;  // receives token_chunk messages; grants credit back
  // A client's key for this turn (HTTP Idempotency-Key), "" for none. With
  // a key, seq 0 means "the next turn": a key already committed replays
  // that turn, one in flight is turn_in_progress.
  std::string idempotency_key;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, chat_request& x) {
  return f(caf::meta::type_name("chat_request"), x.session_id, x.token, x.seq, x.text, x.sampling, x.reply_to,
           x.idempotency_key);
}

/// A piece of the reply (valid UTF-8), in order: index 0, 1, 2, ...
struct token_chunk {
  std::string session_id;
  uint64_t seq = 0;
  uint32_t index = 0;
  std::string text;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, token_chunk& x) {
  return f(caf::meta::type_name("token_chunk"), x.session_id, x.seq, x.index, x.text);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, turn_stats& x) {
  return f(caf::meta::type_name("turn_stats"), x.prompt_tokens, x.generated_tokens, x.ttft_seconds, x.total_seconds,
           x.mean_batch_size, x.replayed, x.stop_reason);
}

struct turn_result {
  std::string session_id;
  uint64_t seq = 0;
  std::string reply;
  turn_stats stats;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, turn_result& x) {
  return f(caf::meta::type_name("turn_result"), x.session_id, x.seq, x.reply, x.stats);
}

/// A committed turn (runtime/turn_record.hpp), as stored and as `history` returns it.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, turn_record& x) {
  return f(caf::meta::type_name("turn_record"), x.seq, x.user, x.assistant, x.prompt_tokens, x.generated_tokens,
           x.committed_at_ms);
}

/// One member of the cluster, as `cluster status` shows it (the node object
/// of docs/cli.md): identity, state and the load figures of its heartbeat
/// (`figure_names[i]` = `figure_values[i]`: sessions, queue_depth, ...).
struct node_status {
  std::string name;
  std::string address;
  std::string state;  // joining | active | draining | dead
  std::string model;
  uint32_t version = 0;
  double capacity = 1;
  double heartbeat_age_seconds = 0;
  std::vector<std::string> figure_names;
  std::vector<double> figure_values;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_status& x) {
  return f(caf::meta::type_name("node_status"), x.name, x.address, x.state, x.model, x.version, x.capacity,
           x.heartbeat_age_seconds, x.figure_names, x.figure_values);
}

/// The same member as the dashboard holds it (runtime/dashboard.hpp), and back.
node_status to_node_status(const runtime::dash_node& d);
runtime::dash_node to_dash_node(const node_status& n);

struct cluster_status {
  std::string cluster;
  std::vector<node_status> nodes;  // by name
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_status& x) {
  return f(caf::meta::type_name("cluster_status"), x.cluster, x.nodes);
}

/// A stateless turn (the HTTP API's plain OpenAI request) that a full
/// node passes to a peer: the whole conversation (roles[i], contents[i]),
/// or with `raw` one prompt for a completion. Chunks go to reply_to as for
/// a session's turn (session_id "", seq 0).
struct stateless_request {
  std::vector<std::string> roles;
  std::vector<std::string> contents;
  bool raw = false;
  std::string prompt;
  sampling_params sampling;
  caf::actor reply_to;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stateless_request& x) {
  return f(caf::meta::type_name("stateless_request"), x.roles, x.contents, x.raw, x.prompt, x.sampling, x.reply_to);
}

/// Registers every type above (call on both sides before the actor_system).
void register_types(caf::actor_system_config& cfg);

}  // namespace brigade
