// Joining the cluster at start (docs/cluster.md, "Membership"): the checks
// of the cluster flags, and the join itself, which asks a live process
// under the same name who it is before taking its place. Used by node.cpp.
#pragma once

#include <caf/fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/base/status.hpp"
#include "runtime/config.hpp"
#include "runtime/membership.hpp"

namespace brigade::actors {

/// The first problem with the cluster flags, as a sentence naming the flag:
/// --cluster with the memory store, a wildcard --host without --advertise,
/// a node name with spaces.
status check_cluster_flags(const runtime::node_config& cfg);

/// The address others dial: --advertise, else host:port.
std::string advertised_address(const runtime::node_config& cfg, int bound_port);

/// HOST:PORT or [V6]:PORT into the host (brackets removed, as CAF's connect
/// wants it) and the port; false when it is neither.
bool split_address(const std::string& addr, std::string& host, uint16_t& port);

struct cluster_join {
  std::shared_ptr<runtime::membership> table;
  runtime::member me;  // as registered (state joining)
};

/// Registers this node (the store must be Redis). A live entry under the
/// same name is asked at its address (1 s timeout) who it is: no answer or
/// another incarnation means it is gone and this node takes its place; its
/// own answer refuses the start. Errors: invalid_argument (another cluster,
/// another model, a live process with the name), io (Redis unreachable).
result<cluster_join> join_cluster(caf::actor_system& sys, const runtime::node_config& cfg,
                                  const runtime::redis_url& url, runtime::member me);

}  // namespace brigade::actors
