// A stateless turn (the HTTP API's plain OpenAI requests): the whole
// conversation comes with the request, runs once on this node's batch loop,
// streams like a session's turn and is stored nowhere. One actor per
// request; it quits once it has answered.
//
//   (b_oneshot, oneshot_request)   -> turn_result (session_id "", seq 0)
//   (b_credit, "", 0, uint32 n)    from the reader: n more chunks may be sent
//
// Chunks go to reply_to as token_chunk messages (session_id "", seq 0), at
// most `stream-window` ahead of its credit; a reader that stops granting
// for `stall-timeout`, or that goes away (its actor ends), cancels the job.
// Errors are brigade_errc: context_full (the prompt cannot fit; nothing is
// dropped, the client owns the history), overloaded, stalled, engine_failed.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <memory>
#include <string>
#include <vector>

#include "actors/node_context.hpp"
#include "kernels/engine/sampling.hpp"
#include "kernels/model/chat_template.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {

using oneshot_atom = caf::atom_constant<caf::atom("b_oneshot")>;  // node-internal: never on the wire

struct oneshot_request {
  std::vector<chat_message> messages;  // a chat: rendered with the model's chat format
  bool raw = false;                    // a completion: `prompt` as it is, no template
  std::string prompt;
  sampling_params sampling;
  caf::actor reply_to;  // receives token_chunk messages; grants credit back
};

/// It watches `gateway`: when the node shuts down (the gateway ends), a
/// running turn fails with shutting_down.
/// The wire form (a peer's) and back.
oneshot_request from_wire(stateless_request r);
stateless_request to_wire(const oneshot_request& r);

caf::actor spawn_oneshot(caf::actor_system& sys, std::shared_ptr<node_context> ctx, caf::actor gateway);

}  // namespace brigade::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::oneshot_request)
