// The load generator of `brigade bench` and `brigade demo`: simulated users,
// each a thread with its own session over one shared client connection,
// running turns and, with --verify, checking afterwards that every
// acknowledged turn is in the session's history exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/client.hpp"

namespace brigade::app {

using clock_type = std::chrono::steady_clock;

struct load_report {
  std::atomic<int64_t> streamed{0};  // chunks received so far (about one per token)
  std::mutex mu;
  std::vector<double> ttft;
  double batch_sum = 0;
  int64_t batch_n = 0;
  int64_t tokens = 0;
  int64_t prompt_tokens = 0;  // tokens the engine prefilled (after cache reuse)
  int64_t turns = 0;
  int64_t errors = 0;
  int refused = 0;
  int64_t lost = 0;        // acknowledged but missing from the history (--verify)
  int64_t duplicated = 0;  // in the history more than once, or with another reply
  std::string first_error;
};

/// One simulated user: opens a session and runs turns until `stop` or `turns`.
void run_user(net::client& c, int turns, int max_tokens, const std::atomic<bool>& stop, load_report& rep, int user,
              bool verify = false);

/// The HTTP API a `bench --api` run drives.
struct api_target {
  std::string host;
  int port = 8080;
  std::string key;  // Bearer key, "" for none
};

/// The same user over the HTTP API: a durable session (POST /v1/sessions),
/// streamed chat turns with X-Brigade-Seq, retried as the OpenAI SDKs do;
/// with `verify`, checked against GET /v1/sessions/{id}.
void run_api_user(const api_target& t, int turns, int max_tokens, const std::atomic<bool>& stop, load_report& rep,
                  int user, bool verify = false);

/// Simulated users over one client connection (bench and demo). With
/// several nodes in `host`, one client per node: user u starts on node
/// u mod n (the list rotated), so sessions spread over the nodes, and each
/// client fails over to the others in turn.
struct load_run {
  std::vector<std::unique_ptr<net::client>> clients;
  load_report rep;
  std::atomic<bool> stop{false};
  clock_type::time_point t0;
  std::vector<std::thread> users;

  /// Connects and starts `n_users`, each running `turns` turns (0: until stop).
  bool start(const std::string& host, int port, int n_users, int turns, int max_tokens, bool verify,
             net::client_error& err) {
    std::vector<net::endpoint> eps;
    if (!net::parse_endpoints(host, port, eps, err.message)) {
      err.code = brigade_errc::bad_request;
      return false;
    }
    for (size_t k = 0; k < eps.size(); ++k) {
      net::client_options o;
      o.port = port;
      o.host.clear();
      for (size_t i = 0; i < eps.size(); ++i) {
        const auto& e = eps[(k + i) % eps.size()];
        o.host += (i ? "," : "") + e.host + ":" + std::to_string(e.port);
      }
      auto c = net::client::connect(o, err);
      if (!c) return false;
      clients.push_back(std::move(c));
    }
    t0 = clock_type::now();
    for (int u = 0; u < n_users; ++u)
      users.emplace_back([this, u, turns, max_tokens, verify] {
        run_user(*clients[static_cast<size_t>(u) % clients.size()], turns, max_tokens, stop, rep, u, verify);
      });
    return true;
  }
  /// The same over the HTTP API: one connection per user.
  void start_api(const api_target& t, int n_users, int turns, int max_tokens, bool verify) {
    t0 = clock_type::now();
    for (int u = 0; u < n_users; ++u)
      users.emplace_back([this, t, u, turns, max_tokens, verify] {
        run_api_user(t, turns, max_tokens, stop, rep, u, verify);
      });
  }
  void join() {
    for (auto& t : users) t.join();
    users.clear();
  }
};

}  // namespace brigade::app
