// The gateway: the actor a node publishes over BASP, the only one clients
// talk to. It checks the protocol version (b_hello), validates every request
// (sizes, UTF-8, sampling parameters, id and token format) with sentences a
// user can act on, refuses new work while the node drains, and delegates the
// rest to the supervisor, so replies come straight from the session.
//
//   (b_hello, uint32 version)                  -> uint32 (the node's version) | version_mismatch
//   (b_open)                                   -> (std::string id, std::string token)
//   (b_open, system prompt)                    -> (id, token): a session with a system prompt (stored)
//   (b_chat, chat_request)                     -> turn_result (tokens stream to reply_to)
//   (b_history, id, token)                     -> std::vector<turn_record>
//   (b_close, id, token)                       -> bool
//   (b_fault, id, token)                       -> (fault injection only) the session crashes
//   (b_cluster)                                -> cluster_status (a single node: itself, cluster "")
//   (b_whois)                                  -> (node name, incarnation)
//   (b_ping, name, incarnation)                -> incarnation (from peers; cluster members only)
//   (b_drainreq, node, admin token)            -> sentence; `cluster drain` (the cluster actor checks the token)
//   (b_peer, b_chat|b_history|b_close, ...)    a request a peer forwarded (served here, never forwarded again)
//   (b_peer, b_open, id[, system])             -> (id, token): a session a peer placed here
//   (b_peer, b_drainreq, node, admin token)    a drain a peer passed on
//   (b_peer, b_stless, stateless_request)      -> turn_result: an HTTP API request a full peer passed on
//   (b_fwd, b_stless, stateless_request)       from this node's API only: its engine is full, pass it to a
//                                              weighted random other active member (the cluster forwards)
//   (b_drain)                                  from this node only: alone, refuse new work from now on; in a
//                                              cluster, keep accepting (work goes on to active nodes)
//   (b_drain, b_close)                         from this node only: refuse new work (a cluster drain's end)
#pragma once

#include <caf/fwd.hpp>

#include <memory>

#include "actors/node_context.hpp"

namespace brigade::actors {

caf::actor spawn_gateway(caf::actor_system& sys, std::shared_ptr<node_context> ctx, caf::actor supervisor);
/// Gives the gateway the cluster actor (after both are spawned). The
/// gateway obeys such node-internal messages only from this node's actors.
void set_gateway_cluster(caf::actor_system& sys, caf::actor gateway, caf::actor cluster);
/// SIGTERM: the gateway refuses new work from now on.
void drain_gateway(caf::actor_system& sys, caf::actor gateway);
/// The last step of a cluster drain: refuse new work (clients move on).
void close_gateway(caf::actor_system& sys, caf::actor gateway);

}  // namespace brigade::actors
