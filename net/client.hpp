// The brigade client library: talks to a node's gateway over BASP.
//
// One `client` owns a small actor system and one connection. Calls block the
// calling thread (several threads may call at once: each chat runs in its own
// actor). `chat` streams the reply's text to `on_text` in order, grants the
// node credit as it consumes (flow control), and returns once the node has
// stored the turn. It retries on `overloaded` and on a lost connection with
// jittered exponential backoff, re-sending the same seq (the node replays a
// committed seq instead of running it twice), reconnecting as needed.
//
// `host` may name several nodes ("h1:p1,h2:p2,h3"; an entry without a port
// uses `port`): the client uses the first that answers and, when the
// connection to it is lost, moves on to the next (cyclically) and re-sends.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/protocol.hpp"

namespace brigade::net {

/// Why a call failed: the node's error code and sentence, or a transport
/// problem (the program maps these to its exit codes, app/commands.hpp).
struct client_error {
  brigade_errc code = brigade_errc::internal;
  bool transport = false;  // connection or timeout problem, not a reply from the node
  std::string message;
};

struct client_options {
  std::string host = "127.0.0.1";  // or a list: "h1:p1,h2:p2,..."
  int port = 7420;                  // for entries without a port
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds turn_timeout{60000};  // silence (no token, no reply) before a retry
  int max_attempts = 8;                           // per call, the first included
  int credit_batch = 8;                           // chunks consumed before granting credit
};

struct endpoint {
  std::string host;
  int port = 0;
};
/// Parses `client_options::host`; false with a sentence naming the bad entry.
bool parse_endpoints(const std::string& list, int default_port, std::vector<endpoint>& out, std::string& error);

/// The addresses a host name stands for (numeric, in the resolver's order;
/// empty when it does not resolve).
using resolver = std::function<std::vector<std::string>(const std::string& host)>;
/// getaddrinfo (IPv4 and IPv6, TCP).
std::vector<std::string> resolve_host(const std::string& host);
/// Each entry whose name resolves to several addresses becomes one entry
/// per address (same port, in order, duplicates dropped), so a name with
/// several A records is several nodes to fail over between.
std::vector<endpoint> expand_endpoints(const std::vector<endpoint>& eps, const resolver& resolve = resolve_host);

class client {
 public:
  /// Connects and checks the protocol version.
  static std::unique_ptr<client> connect(const client_options& opt, client_error& err);
  ~client();

  bool open(std::string& id, std::string& token, client_error& err);
  /// `on_text(index, text)` sees every chunk of the final attempt's reply; a
  /// retry restarts the stream at index 0. `refused` counts `overloaded`
  /// replies seen before success.
  bool chat(const std::string& id, const std::string& token, uint64_t seq, const std::string& text,
            const sampling_params& sampling, const std::function<void(uint32_t, const std::string&)>& on_text,
            turn_result& out, client_error& err, int* refused = nullptr);
  bool history(const std::string& id, const std::string& token, std::vector<turn_record>& out, client_error& err);
  bool close(const std::string& id, const std::string& token, client_error& err);
  /// The cluster's membership table as the node reads it now.
  bool cluster(cluster_status& out, client_error& err);
  /// Asks the cluster to drain `node` (`cluster drain`), presenting the
  /// admin token; `sentence` is the node's answer. Not retried.
  bool drain(const std::string& node, const std::string& admin_token, std::string& sentence, client_error& err);
  /// Crashes the session's actor (nodes started with fault injection only).
  bool inject_fault(const std::string& id, const std::string& token, client_error& err);

  struct impl;

 private:
  explicit client(std::unique_ptr<impl> p);
  std::unique_ptr<impl> p_;
};

}  // namespace brigade::net
