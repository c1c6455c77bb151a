// The session actor: one conversation (docs/design.md, "The path of one turn").
//
//   restoring --loaded--> idle --chat--> generating --done--> committing --stored--> idle
//                           \                  \ reader stalled: paused --credit--> generating
//                            \--idle-timeout--> (passivates: quits normally; state is in the store)
//
// Interface (requests delegated by the supervisor; every call carries the
// session's token, checked in constant time against its stored hash):
//   (b_chat, chat_request)          -> turn_result   after the store acknowledged the turn
//   (b_history, id, token)          -> std::vector<turn_record>
//   (b_close, id, token)            -> bool          deletes the session, then quits
//   (b_credit, id, seq, uint32 n)   from the client: n more chunks may be sent
//   (b_fault, id, token)            only with fault injection: throws (supervision tests)
// Tokens stream to chat_request.reply_to as token_chunk messages, at most
// `stream-window` ahead of the client's credit. Errors are brigade_errc.
#pragma once

#include <caf/fwd.hpp>

#include <memory>
#include <string>

#include "actors/node_context.hpp"

namespace brigade::actors {

/// Spawns a session. With `restore` it loads its history from the store
/// first (queuing requests meanwhile); otherwise it starts empty with `meta`.
/// With `place` (a client's request, in a cluster) it first asks who holds
/// the lease and forwards to that node, or to the session's place
/// (docs/cluster.md, "Placement") when that is another node. (b_handover):
/// this node drains; the session gives its lease back after its turn.
/// `supervisor` receives (b_owner, id, node) and (b_fwd, node, request...)
/// when the session turns out to be owned by another live node.
caf::actor spawn_session(caf::actor_system& sys, std::shared_ptr<node_context> ctx, runtime::session_meta meta,
                         bool restore, bool place, caf::actor supervisor);

}  // namespace brigade::actors
