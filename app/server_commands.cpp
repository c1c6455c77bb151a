// `brigade serve`, `brigade chat`, `brigade bench`, `brigade demo`.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "actors/node.hpp"
#include "app/load_generator.hpp"
#include "app/server_commands.hpp"

#include "runtime/dashboard.hpp"
#include "net/client.hpp"
#include "runtime/config.hpp"
#include "runtime/log.hpp"

namespace brigade::app {

namespace {

// JSON output of the server commands (nlohmann-json, keys in insertion
// order; invalid UTF-8 is replaced, never thrown on).
using ojson = nlohmann::ordered_json;
std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - (p > 0 ? 1 : 0);
  return v[std::min(i, v.size() - 1)];
}

result<runtime::node_config> node_config_from(const server_cli& a) {
  const char* file_env = std::getenv("BRIGADE_CONFIG");
  const std::string file = !a.config_file.empty() ? a.config_file : (file_env ? file_env : "");
  return runtime::resolve_config(
      file, [](const std::string& k) { return std::getenv(k.c_str()); }, a.flags);
}

int fail_client(const net::client_error& e) { return fail(exit_code_for(e), e.message); }

sampling_params sampling_from(const chat_cli& a) {
  sampling_params s;
  s.temperature = a.temp;
  s.top_k = a.top_k;
  s.top_p = a.top_p;
  s.seed = a.seed;
  s.seed_set = a.seed_set;
  s.max_tokens = a.max_tokens;
  s.stop = a.stop;
  return s;
}

}  // namespace

int serve(const server_cli& a) {
  auto cfg = node_config_from(a);
  if (!cfg) return fail(exit_bad_input, cfg.error().message());
  // Signals go to sigwait below, not to whichever thread CAF or the engine
  // happens to run: block them before any thread starts.
  signal(SIGPIPE, SIG_IGN);  // a client that closes its HTTP connection is an error on the write, not a signal
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  runtime::configure_log(cfg->log_level,
                         cfg->node_name.empty() ? cfg->host + ":" + std::to_string(cfg->port) : cfg->node_name);
  auto n = actors::node::start(*cfg, a.fault_injection);
  if (!n) {
    const errc c = n.error().code();
    const std::string why = n.error().message();
    if (c == errc::io && why.find("store unavailable") != std::string::npos) return fail(exit_store, why);
    return fail(c == errc::io && why.find("cannot serve") != std::string::npos ? exit_other : exit_bad_input, why);
  }
  runtime::log(runtime::log_level::info, "", "serving " + (*n)->model_description());
  std::string api;
  if ((*n)->api_port() != 0) api = " api " + (*n)->api_host() + ":" + std::to_string((*n)->api_port());
  std::printf("brigade: listening on %s:%d metrics %s:%d%s\n", (*n)->host().c_str(), (*n)->port(),
              (*n)->host().c_str(), (*n)->metrics_port(), api.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  runtime::log(runtime::log_level::info, "",
               std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": draining (" +
                   std::to_string((*n)->turns_in_flight()) + " turns in flight)");
  const bool drained = (*n)->drain_and_stop();
  runtime::log(drained ? runtime::log_level::info : runtime::log_level::warn, "",
               drained ? "drained; exiting" : "grace period over; in-flight turns were cut off");
  n->reset();
  return exit_ok;
}

namespace {

/// The cluster status as the dashboard's JSON (and its desired replicas) has it.
runtime::dash_snapshot to_snapshot(const cluster_status& st) {
  runtime::dash_snapshot s;
  s.cluster = st.cluster;
  for (const auto& n : st.nodes) s.nodes.push_back(to_dash_node(n));
  return s;
}

}  // namespace

int exit_code_for(const net::client_error& e) {
  if (e.transport) return exit_other;
  switch (e.code) {
    case brigade_errc::bad_request:
    case brigade_errc::seq_gap:
    case brigade_errc::context_full:
    case brigade_errc::version_mismatch:
    case brigade_errc::turn_in_progress: return exit_bad_input;
    case brigade_errc::overloaded:
    case brigade_errc::session_moved: return exit_overloaded;
    case brigade_errc::store_unavailable: return exit_store;
    case brigade_errc::unauthorized: return exit_unauthorized;
    default: return exit_other;
  }
}

int cluster_status_command(const cluster_cli& a) {
  net::client_options o;
  o.host = a.host;
  o.port = a.port;
  net::client_error err;
  auto c = net::client::connect(o, err);
  if (!c) return fail_client(err);
  cluster_status st;
  if (!c->cluster(st, err)) return fail_client(err);
  // Every live member computes the same signal (docs/scaling.md); take the
  // largest, as the autoscaler's query does. null: no member has one yet.
  const auto snap = to_snapshot(st);
  const double desired = snap.desired_replicas();
  if (a.json) {
    std::printf("%s\n", runtime::cluster_status_json(snap, false).c_str());
    return exit_ok;
  }
  if (st.cluster.empty())
    std::printf("single node (memory store, no cluster)");
  else
    std::printf("cluster %s: %zu members", st.cluster.c_str(), st.nodes.size());
  if (desired > 0) std::printf(", desired replicas %.0f", desired);
  std::printf("\n");
  for (const auto& n : snap.nodes) {
    const auto figure = [&n](const char* k) { return n.figure(k); };
    if (n.state == "joining")
      std::printf("  %-20s joining: reached by %.0f of %.0f live members (a majority makes it active)\n", n.name.c_str(),
                  figure("members_reaching"), figure("members_live"));
    else
      std::printf(
          "  %-20s %-9s %-22s sessions %4.0f  queue %3.0f  %7.1f tokens/s  ttft p99 %6.3fs  load %4.2f  heartbeat %.1fs "
          "ago\n",
          n.name.c_str(), n.state.c_str(), n.address.c_str(), figure("sessions"), figure("queue_depth"),
          figure("tokens_per_second"), figure("ttft_p99_seconds"), figure("load_ratio"),
          n.heartbeat_age_seconds);
  }
  return exit_ok;
}

int cluster_drain_command(const cluster_drain_cli& a) {
  if (a.admin_token_file.empty())
    return fail(exit_unauthorized, "cluster drain needs --admin-token-file FILE (the admin token the nodes were "
                                   "started with); drains without it are refused");
  auto token = runtime::read_secret_file(a.admin_token_file, "--admin-token-file");
  if (!token) return fail(exit_unauthorized, token.error().message() + "; the drain was not sent");
  net::client_options o;
  o.host = a.host;
  o.port = a.port;
  net::client_error err;
  auto c = net::client::connect(o, err);
  if (!c) return fail_client(err);
  std::string said;
  if (!c->drain(a.node, *token, said, err)) return fail_client(err);
  std::fprintf(stderr, "brigade: %s; waiting until it has left\n", said.c_str());
  std::vector<net::endpoint> eps;
  std::string why;
  net::parse_endpoints(a.host, a.port, eps, why);
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1000));
  std::string last = "draining";
  while (std::chrono::steady_clock::now() < deadline) {
    cluster_status st;
    if (!c->cluster(st, err)) {
      if (err.transport && eps.size() == 1) {  // the node asked was the one drained: its port closed as it exited
        std::printf("node %s drained and exited (its port closed)\n", a.node.c_str());
        return exit_ok;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      c = net::client::connect(o, err);
      if (!c) return fail_client(err);
      continue;
    }
    auto it = std::find_if(st.nodes.begin(), st.nodes.end(), [&](const node_status& n) { return n.name == a.node; });
    if (it == st.nodes.end() || it->state == "dead") {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("node %s drained and left cluster %s in %.1fs\n", a.node.c_str(), st.cluster.c_str(), s);
      return exit_ok;
    }
    last = it->state;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return fail(exit_other, "node " + a.node + " is still " + last + " after " + std::to_string(int(a.timeout_s)) +
                              "s (in-flight turns get drain-grace, then it leaves); check its log");
}

int chat(const chat_cli& a) {
  net::client_options o;
  o.host = a.host;
  o.port = a.port;
  o.turn_timeout = std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1000));
  net::client_error err;
  auto c = net::client::connect(o, err);
  if (!c) return fail_client(err);
  std::string id = a.session, token = a.token;
  if ((id.empty()) != (token.empty())) return fail(exit_bad_input, "--session and --token go together");
  const bool scripted = a.open || a.history || a.close || a.fault || !a.prompt.empty();

  if (a.open) {
    if (!c->open(id, token, err)) return fail_client(err);
    std::printf("%s %s\n", id.c_str(), token.c_str());
    return exit_ok;
  }
  if (a.history || a.close || a.fault) {
    if (id.empty()) return fail(exit_bad_input, "--history, --close and --fault need --session ID --token T");
    if (a.fault) {
      if (!c->inject_fault(id, token, err)) return fail_client(err);
      return exit_ok;
    }
    if (a.history) {
      std::vector<turn_record> turns;
      if (!c->history(id, token, turns, err)) return fail_client(err);
      for (const auto& t : turns) {
        const ojson j = {{"seq", t.seq},
                         {"user", t.user},
                         {"assistant", t.assistant},
                         {"prompt_tokens", t.prompt_tokens},
                         {"generated_tokens", t.generated_tokens},
                         {"committed_at_ms", t.committed_at_ms}};
        std::printf("%s\n", dump(j).c_str());
      }
    }
    if (a.close) {
      if (!c->close(id, token, err)) return fail_client(err);
    }
    return exit_ok;
  }
  if (scripted) {  // -p TEXT
    if (id.empty()) {
      if (!c->open(id, token, err)) return fail_client(err);
      std::fprintf(stderr, "session %s %s\n", id.c_str(), token.c_str());
    }
    uint64_t seq = a.seq;
    if (seq == 0) {
      std::vector<turn_record> turns;
      if (!c->history(id, token, turns, err)) return fail_client(err);
      seq = turns.empty() ? 1 : turns.back().seq + 1;
    }
    turn_result r;
    if (!c->chat(id, token, seq, a.prompt, sampling_from(a), nullptr, r, err)) return fail_client(err);
    std::fwrite(r.reply.data(), 1, r.reply.size(), stdout);  // the reply may hold any byte, NUL included
    std::fputc('\n', stdout);
    return exit_ok;
  }

  // Interactive.
  if (id.empty() && !c->open(id, token, err)) return fail_client(err);
  uint64_t seq = 1;
  {
    std::vector<turn_record> turns;
    if (c->history(id, token, turns, err) && !turns.empty()) seq = turns.back().seq + 1;
  }
  std::fprintf(stderr, "session %s %s\ncommands: /new (new session), /stats, /quit\n", id.c_str(), token.c_str());
  turn_stats last{};
  std::string line;
  while (true) {
    std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/quit") break;
    if (line.empty()) continue;
    if (line == "/new") {
      if (!c->open(id, token, err)) return fail_client(err);
      seq = 1;
      std::fprintf(stderr, "session %s %s\n", id.c_str(), token.c_str());
      continue;
    }
    if (line == "/stats") {
      std::fprintf(stderr,
                   "last turn: %u prompt tokens, %u generated, first token %.3f s, total %.3f s, batch %.1f, %s\n",
                   last.prompt_tokens, last.generated_tokens, last.ttft_seconds, last.total_seconds,
                   last.mean_batch_size, last.stop_reason.c_str());
      continue;
    }
    turn_result r;
    uint32_t expected = 0;
    auto on_text = [&](uint32_t index, const std::string& text) {
      if (index == 0 && expected != 0) std::printf("\n[retrying]\n");
      expected = index + 1;
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    if (!c->chat(id, token, seq, line, sampling_from(a), on_text, r, err)) {
      std::printf("\n");
      fail_client(err);
      // The turn may have been stored anyway (e.g. the connection dropped
      // after the commit): continue from what the node has.
      std::vector<turn_record> turns;
      net::client_error herr;
      if (c->history(id, token, turns, herr)) seq = turns.empty() ? 1 : turns.back().seq + 1;
      continue;
    }
    std::printf("\n");
    last = r.stats;
    ++seq;
  }
  return exit_ok;
}

int bench(const bench_server_cli& a) {
  if (a.sessions <= 0 || a.turns <= 0) return fail(exit_bad_input, "--sessions and --turns must be positive");
  load_run run;
  net::client_error err;
  std::string target = a.host.find(',') != std::string::npos ? a.host : a.host + ":" + std::to_string(a.port);
  if (a.api) {
    if (a.host.find(',') != std::string::npos)
      return fail(exit_bad_input, "bench --api drives one node: give one --host and its --api-port");
    api_target t{a.host, a.api_port, a.api_key};
    if (const size_t colon = t.host.rfind(':'); colon != std::string::npos && t.host.find(':') == colon) {
      t.port = std::atoi(t.host.c_str() + colon + 1);  // --host H:P names the API port itself
      t.host.resize(colon);
      if (t.port <= 0 || t.port > 65535) return fail(exit_bad_input, "--host " + a.host + ": the port must be 1 to 65535");
    }
    if (t.key.empty())
      if (const char* k = std::getenv("BRIGADE_API_KEY")) t.key = k;
    target = "http://" + t.host + ":" + std::to_string(t.port) + "/v1";
    run.start_api(t, a.sessions, a.turns, a.max_tokens, a.verify);
  } else if (!run.start(a.host, a.port, a.sessions, a.turns, a.max_tokens, a.verify, err)) {
    return fail_client(err);
  }
  run.join();
  load_report& rep = run.rep;
  const auto t0 = run.t0;
  const double wall = seconds_since(t0);
  const double tps = static_cast<double>(rep.tokens) / wall;
  const double mean_batch = rep.batch_n ? rep.batch_sum / static_cast<double>(rep.batch_n) : 0;
  std::printf("bench: %d sessions x %d turns against %s in %.2f s\n", a.sessions, a.turns, target.c_str(), wall);
  std::printf("  turns %lld, errors %lld, refused (before retries) %d, prompt tokens prefilled %lld\n",
              static_cast<long long>(rep.turns), static_cast<long long>(rep.errors), rep.refused,
              static_cast<long long>(rep.prompt_tokens));
  std::printf("  tokens/s %.1f, time to first token p50 %.3f s p99 %.3f s, mean batch size %.1f\n", tps,
              percentile(rep.ttft, 0.5), percentile(rep.ttft, 0.99), mean_batch);
  if (a.verify)
    std::printf("  verified against the stored histories: %lld lost, %lld duplicated\n",
                static_cast<long long>(rep.lost), static_cast<long long>(rep.duplicated));
  if (!rep.first_error.empty()) std::fprintf(stderr, "bench: first error: %s\n", rep.first_error.c_str());
  if (a.json) {
    const ojson j = {{"sessions", a.sessions},
                     {"transport", a.api ? "http" : "basp"},
                     {"turns", rep.turns},
                     {"errors", rep.errors},
                     {"seconds", wall},
                     {"tokens", rep.tokens},
                     {"prompt_tokens", rep.prompt_tokens},
                     {"tokens_per_second", tps},
                     {"ttft_p50_seconds", percentile(rep.ttft, 0.5)},
                     {"ttft_p99_seconds", percentile(rep.ttft, 0.99)},
                     {"mean_batch_size", mean_batch},
                     {"refused", rep.refused},
                     {"lost", rep.lost},
                     {"duplicated", rep.duplicated}};
    std::printf("%s\n", dump(j).c_str());
  }
  return rep.errors || rep.lost || rep.duplicated ? exit_other : exit_ok;
}

int demo(const demo_cli& a) {
  if (a.seconds <= 0 || a.users <= 0) return fail(exit_bad_input, "--seconds and --users must be positive");
  signal(SIGPIPE, SIG_IGN);  // its API may serve a curl that goes away
  runtime::node_config cfg;
  cfg.port = 0;
  cfg.metrics_port = 0;
  cfg.log_level = "warn";
  if (!a.model.empty()) cfg.model = a.model;
  if (a.model.empty())
    std::fprintf(stderr, "demo: starting a node on the built-in model (synthesised once into the cache)...\n");
  else
    std::fprintf(stderr, "demo: starting a node on %s...\n", a.model.c_str());
  auto n = actors::node::start(cfg);
  if (!n) return fail(exit_other, n.error().message());
  std::printf("node: %s\n  serving on %s:%d, metrics on http://%s:%d/metrics, OpenAI API on http://%s:%d/v1\n"
              "  live dashboard: http://%s:%d/ (open it in a browser while the demo runs)\n",
              (*n)->model_description().c_str(), (*n)->host().c_str(), (*n)->port(), (*n)->host().c_str(),
              (*n)->metrics_port(), (*n)->api_host().c_str(), (*n)->api_port(), (*n)->host().c_str(),
              (*n)->metrics_port());
  load_run run;
  net::client_error err;
  if (!run.start((*n)->host(), (*n)->port(), a.users, 0, 32, false, err)) return fail_client(err);
  load_report& rep = run.rep;
  const auto t0 = run.t0;
  int64_t last_tokens = 0;
  auto last_t = clock_type::now();
  while (seconds_since(t0) < a.seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::lock_guard<std::mutex> g(rep.mu);
    const double dt = seconds_since(last_t);
    const int64_t streamed = rep.streamed.load();
    const double rate = static_cast<double>(streamed - last_tokens) / dt;
    last_tokens = streamed;
    last_t = clock_type::now();
    std::fprintf(stderr, "\r  %4.1fs  %7.1f tokens/s  first token p50 %5.3fs  batch %4.1f  users %d  turns %lld   ",
                 seconds_since(t0), rate, percentile(rep.ttft, 0.5),
                 rep.batch_n ? rep.batch_sum / static_cast<double>(rep.batch_n) : 0.0, a.users,
                 static_cast<long long>(rep.turns));
  }
  run.stop = true;
  run.join();
  const double wall = seconds_since(t0);
  std::fprintf(stderr, "\n");
  std::printf("\nsummary (%d simulated users, %.1f s):\n", a.users, wall);
  std::printf("  %-28s %10lld\n", "turns acknowledged", static_cast<long long>(rep.turns));
  std::printf("  %-28s %10lld\n", "tokens generated", static_cast<long long>(rep.tokens));
  std::printf("  %-28s %10.1f\n", "tokens/s", static_cast<double>(rep.tokens) / wall);
  std::printf("  %-28s %10.3f\n", "time to first token p50 (s)", percentile(rep.ttft, 0.5));
  std::printf("  %-28s %10.3f\n", "time to first token p99 (s)", percentile(rep.ttft, 0.99));
  std::printf("  %-28s %10.1f\n", "mean engine batch size", rep.batch_n ? rep.batch_sum / rep.batch_n : 0.0);
  std::printf("  %-28s %10d\n", "refused, then retried", rep.refused);
  std::printf("  %-28s %10lld\n", "failed turns", static_cast<long long>(rep.errors));
  run.clients.clear();
  (*n)->drain_and_stop();
  return rep.errors ? exit_other : exit_ok;
}

}  // namespace brigade::app
