#include "runtime/protocol.hpp"

namespace brigade {

const char* to_string(brigade_errc c) {
  switch (c) {
    case brigade_errc::overloaded: return "overloaded";
    case brigade_errc::unauthorized: return "unauthorized";
    case brigade_errc::bad_request: return "bad request";
    case brigade_errc::seq_gap: return "seq gap";
    case brigade_errc::turn_in_progress: return "turn in progress";
    case brigade_errc::store_unavailable: return "store unavailable";
    case brigade_errc::context_full: return "context full";
    case brigade_errc::stalled: return "stalled";
    case brigade_errc::session_failed: return "session failed";
    case brigade_errc::version_mismatch: return "version mismatch";
    case brigade_errc::shutting_down: return "shutting down";
    case brigade_errc::engine_failed: return "engine failed";
    case brigade_errc::internal: return "internal error";
    case brigade_errc::session_crashed: return "session crashed";
    case brigade_errc::session_moved: return "session moved";
  }
  return "unknown";
}

node_status to_node_status(const runtime::dash_node& d) {
  node_status n;
  n.name = d.name;
  n.address = d.address;
  n.state = d.state;
  n.model = d.model;
  n.version = d.version;
  n.capacity = d.capacity;
  n.heartbeat_age_seconds = d.heartbeat_age_seconds;
  for (const auto& [k, v] : d.figures) {
    n.figure_names.push_back(k);
    n.figure_values.push_back(v);
  }
  return n;
}

runtime::dash_node to_dash_node(const node_status& n) {
  runtime::dash_node d;
  d.name = n.name;
  d.address = n.address;
  d.state = n.state;
  d.model = n.model;
  d.version = n.version;
  d.capacity = n.capacity;
  d.heartbeat_age_seconds = n.heartbeat_age_seconds;
  for (size_t i = 0; i < n.figure_names.size() && i < n.figure_values.size(); ++i)
    d.figures[n.figure_names[i]] = n.figure_values[i];
  return d;
}

caf::error unknown_session_error() {
  return make_error(brigade_errc::unauthorized, "unknown session or wrong token; open a new session");
}

caf::error shutting_down_error() {
  return make_error(brigade_errc::shutting_down, "the node is shutting down; retry on another node");
}

caf::error session_moved_error(const std::string& why) {
  return make_error(brigade_errc::session_moved, why + "; retry shortly (the client does)");
}

uint8_t brigade_code(const caf::error& e) { return e.category() == caf::atom("brigade") ? e.code() : 0; }

std::string error_sentence(caf::actor_system& sys, const caf::error& e) {
  if (e.category() == caf::atom("brigade") && e.context().match_elements<std::string>())
    return e.context().get_as<std::string>(0);
  return sys.render(e);
}

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<sampling_params>("brigade::sampling_spec");
  cfg.add_message_type<chat_request>("brigade::chat_request");
  cfg.add_message_type<token_chunk>("brigade::token_chunk");
  cfg.add_message_type<turn_stats>("brigade::turn_stats");
  cfg.add_message_type<turn_result>("brigade::turn_result");
  cfg.add_message_type<turn_record>("brigade::turn_record");
  cfg.add_message_type<node_status>("brigade::node_status");
  cfg.add_message_type<cluster_status>("brigade::cluster_status");
  cfg.add_message_type<stateless_request>("brigade::stateless_request");
  cfg.add_error_category(caf::atom("brigade"), [](uint8_t code, caf::atom_value, const caf::message& ctx) {
    std::string s = std::string("brigade error: ") + to_string(static_cast<brigade_errc>(code));
    if (ctx.match_elements<std::string>()) s += ": " + ctx.get_as<std::string>(0);
    return s;
  });
}

}  // namespace brigade
