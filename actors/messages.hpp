// Node-internal message types (never sent over the network): engine events
// and store results turned into messages for the actor that asked.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <chrono>
#include <memory>

#include "actors/batch_loop.hpp"
#include "runtime/membership.hpp"
#include "runtime/store.hpp"

namespace brigade::actors {

// Node-internal atoms (timers and hand-offs between a node's actors; never
// sent by clients). Wire atoms are in runtime/protocol.hpp.
using idle_atom = caf::atom_constant<caf::atom("b_idle")>;        // session: idle timer of a generation
using stall_atom = caf::atom_constant<caf::atom("b_stall")>;      // session: stall timer of a turn
using drain_atom = caf::atom_constant<caf::atom("b_drain")>;      // gateway, supervisor, sessions: shut down
using restart_atom = caf::atom_constant<caf::atom("b_restart")>;  // supervisor: restart a crashed session
using stored_atom = caf::atom_constant<caf::atom("b_stored")>;    // session: the store answered an append
using loaded_atom = caf::atom_constant<caf::atom("b_loaded")>;    // session: the store answered an acquire
using renew_atom = caf::atom_constant<caf::atom("b_renew")>;      // session: renew the lease / its answer
// The cluster actor (actors/cluster.hpp) and what it tells others:
using fwd_atom = caf::atom_constant<caf::atom("b_fwd")>;        // (fwd, node, request...): forward to that node
using owner_atom = caf::atom_constant<caf::atom("b_owner")>;    // supervisor: (owner, id, node) caches an owner
using fence_atom = caf::atom_constant<caf::atom("b_fence")>;    // supervisor, sessions: declared dead, stop serving
using hbeat_atom = caf::atom_constant<caf::atom("b_hbeat")>;    // cluster: heartbeat timer
using tick_atom = caf::atom_constant<caf::atom("b_tick")>;      // cluster: ping timer
using table_atom = caf::atom_constant<caf::atom("b_table")>;    // cluster: the heartbeat's answer
using rejoin_atom = caf::atom_constant<caf::atom("b_rejoin")>;  // cluster: rejoin timer / its answer
using report_atom = caf::atom_constant<caf::atom("b_report")>;  // cluster: a report's answer
using status_atom = caf::atom_constant<caf::atom("b_status")>;  // cluster: the table read for `cluster status`
using handover_atom = caf::atom_constant<caf::atom("b_handover")>;  // session: this node drains, hand over
using released_atom = caf::atom_constant<caf::atom("b_released")>;  // session: the lease was given back
using located_atom = caf::atom_constant<caf::atom("b_located")>;    // session: who holds the lease (placement)
using retire_atom = caf::atom_constant<caf::atom("b_retire")>;  // session -> supervisor: route nothing more here
using gapchk_atom = caf::atom_constant<caf::atom("b_gapchk")>;  // session: is this copy still the owner (a seq gap)
using scale_atom = caf::atom_constant<caf::atom("b_scale")>;  // supervisor: evaluate the replica signal
using redial_atom = caf::atom_constant<caf::atom("b_redial")>;  // cluster: dial a peer whose connection dropped

struct store_reply {
  runtime::store_status st;
};

struct table_reply {
  std::shared_ptr<runtime::store_result<runtime::member_table>> r;
  std::chrono::steady_clock::time_point sent;  // when the heartbeat was sent (status reads: unused)
};

struct report_reply {
  std::shared_ptr<runtime::store_result<runtime::membership::verdict>> r;
};

struct located_reply {
  std::shared_ptr<runtime::store_result<runtime::lease_holder>> r;
};

struct loaded_snapshot {
  std::shared_ptr<runtime::store_result<runtime::session_snapshot>> r;
  runtime::lease_holder holder;  // the live holder that refused the acquire, if any
};

}  // namespace brigade::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::gen_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::store_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::loaded_snapshot)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::located_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::table_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(brigade::actors::report_reply)
