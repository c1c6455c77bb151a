// A brigade node in one object: engine, batch loop, store, metrics endpoint,
// actor system, supervisor and the gateway published over BASP. Used by
// `brigade serve` and, in-process, by `brigade demo`.
//
// start() loads (or synthesises) the model and binds both ports; once it
// returns, clients can connect. drain_and_stop() implements SIGTERM: stop
// admitting, let in-flight turns finish for up to drain-grace, then stop.
#pragma once

#include <memory>
#include <string>

#include "kernels/base/status.hpp"
#include "runtime/config.hpp"

namespace brigade::actors {

class node {
 public:
  /// Errors: invalid_argument (bad configuration), io (model, ports), the
  /// model reader's errors.
  static result<std::unique_ptr<node>> start(const runtime::node_config& cfg, bool fault_injection = false);
  ~node();

  const std::string& host() const;
  int port() const;
  int metrics_port() const;
  /// The HTTP API's port, 0 with --api-port off; and its address.
  int api_port() const;
  const std::string& api_host() const;
  const std::string& model_description() const;
  /// Turns running or committing right now.
  int turns_in_flight() const;
  /// True when everything drained within the grace period.
  bool drain_and_stop();

  struct impl;

 private:
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> p_;
};

}  // namespace brigade::actors
