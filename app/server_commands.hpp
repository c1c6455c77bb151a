// Arguments of the server-side subcommands (built only with the server
// dependencies; see main.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "app/commands.hpp"

namespace brigade::net {
struct client_error;
}

namespace brigade::app {

struct server_cli {
  std::map<std::string, std::string> flags;  // config keys given on the command line
  std::string config_file;
  bool fault_injection = false;
};
/// `brigade serve [...]`: runs a node until SIGTERM/SIGINT, then drains.
int serve(const server_cli& a);

struct chat_cli {
  std::string host = "127.0.0.1";
  int port = 7420;
  std::string prompt, session, token;
  uint64_t seq = 0;
  bool open = false, history = false, close = false, fault = false;
  int max_tokens = 0;
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 0;
  bool seed_set = false;
  std::vector<std::string> stop;
  double timeout_s = 60;
};
int chat(const chat_cli& a);

struct bench_server_cli {
  std::string host = "127.0.0.1";
  int port = 7420;
  int sessions = 16, turns = 4, max_tokens = 32;
  bool json = false;
  bool verify = false;  // check every acknowledged turn against the stored history afterwards
  bool api = false;     // drive the HTTP API instead of BASP
  int api_port = 8080;
  std::string api_key;  // default: BRIGADE_API_KEY
};
int bench(const bench_server_cli& a);

struct cluster_cli {
  std::string host = "127.0.0.1";
  int port = 7420;
  bool json = false;
};
/// `brigade cluster status`: the membership table, read through any node.
int cluster_status_command(const cluster_cli& a);

struct top_cli {
  std::string host = "127.0.0.1";
  int port = 7420;
  double interval_s = 1;
  int iterations = 0;  // frames before it exits (0: until q)
};
/// `brigade top`: the cluster in the terminal, refreshed every second.
int top(const top_cli& a);

/// docs/cli.md exit codes for a client error.
int exit_code_for(const net::client_error& e);

struct cluster_drain_cli {
  std::string host = "127.0.0.1";
  int port = 7420;
  std::string node;
  std::string admin_token_file;
  double timeout_s = 120;
};
/// `brigade cluster drain NODE`: that node drains; returns once it has left.
int cluster_drain_command(const cluster_drain_cli& a);

struct scaling_cli {
  std::string ttft_target = "1s", interval = "5s", down_window = "5min", backlog = "0";
  int min_replicas = 1, max_replicas = 16;
};
/// `brigade scaling simulate`: the replica formula on JSON lines from
/// standard input, one evaluation per line (docs/scaling.md).
int scaling_simulate(const scaling_cli& a);

struct demo_cli {
  double seconds = 15;
  int users = 32;
  std::string model;
};
int demo(const demo_cli& a);

}  // namespace brigade::app
