// The gateway: the actor a node publishes over BASP, the only one clients
// talk to. It checks the protocol version (b_hello), validates every request
// (sizes, UTF-8, sampling parameters, id and token format) with sentences a
// user can act on, refuses new work while the node drains, and delegates the
// rest to the supervisor, so replies come straight from the session.
//
//   (b_hello, uint32 version)                  -> uint32 (the node's version) | version_mismatch
//   (b_open)                                   -> (std::string id, std::string token)
//   (b_chat, chat_request)                     -> turn_result (tokens stream to reply_to)
//   (b_history, id, token)                     -> std::vector<turn_record>
//   (b_close, id, token)                       -> bool
//   (b_fault, id, token)                       -> (fault injection only) the session crashes
//   (b_drain)                                  local: refuse new turns from now on
#pragma once

#include <caf/fwd.hpp>

#include <memory>

#include "actors/node_context.hpp"

namespace brigade::actors {

caf::actor spawn_gateway(caf::actor_system& sys, std::shared_ptr<node_context> ctx, caf::actor supervisor);

}  // namespace brigade::actors
