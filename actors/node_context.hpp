// What every actor of a node shares, immutable after start: configuration,
// the engine's batch loop, the store, metrics and the model's tokenizer and
// chat format. Passed to actors at spawn as a shared_ptr.
#pragma once

#include <caf/fwd.hpp>

#include <atomic>
#include <memory>
#include <string>

#include "actors/batch_loop.hpp"
#include "actors/cluster_view.hpp"
#include "kernels/model/chat_template.hpp"
#include "runtime/config.hpp"
#include "runtime/dashboard.hpp"
#include "runtime/metrics.hpp"
#include "runtime/store.hpp"

namespace brigade::actors {

struct node_context {
  runtime::node_config cfg;
  std::shared_ptr<batch_loop> loop;
  std::shared_ptr<runtime::session_store> store;
  std::shared_ptr<runtime::node_metrics> metrics;
  std::shared_ptr<cluster_view> cluster = std::make_shared<cluster_view>();  // disabled outside a cluster
  chat_format format = chat_format::chatml;
  std::string model_id;          // file name and parameter count, stored with sessions
  bool fault_injection = false;  // accept b_fault (tests of supervision)
  std::atomic<uint64_t> next_turn_id{1};
  std::atomic<int> turns_in_flight{0};
  std::atomic<int> sessions_live{0};  // session actors (the supervisor counts them)
  /// What the live dashboard shows (the node's sampler feeds it).
  std::shared_ptr<runtime::dashboard> dash = std::make_shared<runtime::dashboard>();
  const tokenizer& vocab() const { return loop->vocab(); }
  /// A supervisor event of this node for the dashboard (kind: session_restart,
  /// failover, handoff; runtime/dashboard.hpp).
  void event(const char* kind, const std::string& session, std::string detail) const;
};

/// session_moved: in a cluster, this node reaches no active member now
/// (itself included: it is joining, or cut off from its peers), so it
/// places no session; the client retries or moves on.
caf::error no_place_error(const node_context& ctx);

}  // namespace brigade::actors
