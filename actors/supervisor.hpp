// The supervisor: owns the node's session actors (docs/design.md, "Supervision").
// Finds or spawns the session for each request and delegates to it; spawns
// restore from the store. A session that crashes is restarted from the store
// after an exponential backoff (restart-backoff, doubling), unless it crashed
// more than max-restarts times within restart-window: then it is marked
// failed and its clients are told why. Sessions passivate themselves when
// idle (normal exit: no restart). Publishes brigade_sessions_active and
// brigade_session_restarts_total.
//
// Interface: (b_open) -> (id, token); (b_chat, chat_request) -> turn_result;
// (b_history|b_close|b_fault, id, token) -> as the session; (b_drain) stops
// new sessions.
#pragma once

#include <caf/fwd.hpp>

#include <memory>

#include "actors/node_context.hpp"

namespace brigade::actors {

caf::actor spawn_supervisor(caf::actor_system& sys, std::shared_ptr<node_context> ctx);

}  // namespace brigade::actors
