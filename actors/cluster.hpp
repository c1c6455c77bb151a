// The cluster actor of a node (docs/cluster.md): membership, failure
// detection and forwarding.
//
// - Heartbeats: every `heartbeat` it writes this node's state and load
//   figures into the membership table (runtime/membership.hpp) and reads the
//   table back. A refused heartbeat means this node was declared dead: it
//   stops serving at once (the supervisor stops every session; their clients
//   get the retryable session_moved) and rejoins with a new incarnation after
//   a backoff of at least 5 s.
// - Peers: it connects to every live member of its protocol version over
//   BASP (asynchronously, with a timeout), monitors it, and pings it every
//   `ping-interval`, each ping with that deadline. A lost connection is an
//   immediate suspicion, `ping-misses` missed pings in a row another; a
//   suspicion becomes a report (membership.report) while this node reaches a
//   majority of the active members (with two members, while it reaches
//   Redis). A report that completes a majority declares the peer dead: its
//   incarnation joins the view's dead set, so its sessions are taken over
//   at once by whichever node receives their next request.
// - Joining: it becomes `active` once a majority of the live members
//   (itself included) have pinged it at its advertised address.
// - Forwarding: (b_fwd, node, b_chat|b_history|b_close, ...) goes to that
//   peer's gateway as a peer request (never forwarded again); the reply goes
//   back to the original requester. When the peer dies or leaves, its
//   pending requests fail at once with session_moved (CAF would not fail
//   them before their timeout).
//
//   (b_ping, name, incarnation)  -> this node's incarnation (from peers)
//   (b_cluster)                  -> cluster_status (the table, read now)
//   (b_drain)                    this node drains: state `draining`, peers told to re-read
//   (b_drainreq, node, token)    `cluster drain`: the admin token checked, then that node drains
//   (b_fwd, node, b_open, id)    a new session placed on that node -> (id, token)
// - Placement: it publishes the active members it reaches, with their
//   capacities, to the cluster view (actors/cluster_view.hpp), which places
//   sessions by weighted rendezvous hashing (runtime/placement.hpp).
#pragma once

#include <caf/fwd.hpp>

#include <memory>

#include "actors/node_context.hpp"
#include "runtime/membership.hpp"

namespace brigade::actors {

caf::actor spawn_cluster(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                         std::shared_ptr<runtime::membership> table, runtime::member me, caf::actor supervisor);

}  // namespace brigade::actors
