// The OpenAI-compatible HTTP API of a node (docs/api.md): cpp-httplib on
// threads of its own (never CAF's scheduler threads), in front of the
// gateway. Every request becomes what a BASP client would send, so
// sessions, exactly-once turns, batching and the cluster's forwarding work
// the same for both:
//   - stateless chat and completions run as a one-turn actor (oneshot.hpp);
//   - durable requests (X-Brigade-Session) go through the gateway as
//     (b_chat, chat_request), to whichever node owns the session;
//   - /v1/sessions opens, reads and closes sessions through the gateway.
// Parsing and serialisation are plain functions in net/openai.hpp.
//
// Sizing: `max-batch + queue-limit + 16` generation requests in flight (a
// streaming one counts, and holds its thread, until its last byte), one more
// answered 429 at once; the pool has 8 threads more than that for those
// answers and the other routes. Connections: one per pool thread, 64 more
// waiting for a thread, and past that cap two spare threads answer 429 and
// close. Keep-alive connections hold a thread while idle, for at most 2 s.
#pragma once

#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/node_context.hpp"
#include "kernels/base/status.hpp"

namespace brigade::actors {

struct api_options {
  std::vector<std::string> model_ids;  // what `model` may name: general.name, the file's base name
  std::vector<std::string> key_hashes;  // SHA-256 (hex) of each API key; empty: no authentication
  std::function<bool()> draining;       // the node drains
  std::function<bool()> clustered;      // the node is a cluster member (a draining one still forwards)
};

class api_server {
 public:
  /// Binds `ctx->cfg.api_host` and the port (0: a free one); errors name the flag.
  static result<std::unique_ptr<api_server>> start(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                                                   caf::actor gateway, api_options opt, int port);
  ~api_server();
  int port() const;
  /// Stops accepting and waits for the server thread (open streams end).
  void stop();
  /// Requests being answered now.
  int in_flight() const;

  struct impl;

 private:
  explicit api_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> p_;
};

/// The API keys of the configuration (api-key, api-keys-file), or an error naming the file.
result<std::vector<std::string>> load_api_keys(const runtime::node_config& cfg);
/// True for 127.0.0.0/8, ::1 and localhost.
bool is_loopback_host(const std::string& host);

}  // namespace brigade::actors
