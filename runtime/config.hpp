// Node configuration: one struct, every field a key that works on the
// command line (--batch-window 2ms), as an environment variable
// (BRIGADE_BATCH_WINDOW=2ms) and in the config file (batch-window = 2ms).
// Precedence: flag > environment > config file > default (docs/cli.md).
// config/brigade.conf lists every key with its default and unit; the test
// ConfigFile.ListsEveryKey keeps the two in step.
//
// Plain C++ (no CAF): `main` reads it once, then each actor gets an immutable
// copy at spawn. Errors are sentences naming the key, the value and the
// source ("--batch-window: '2 parsecs' is not a duration; use e.g. 2ms").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernels/base/status.hpp"

namespace brigade::runtime {

using duration = std::chrono::microseconds;

struct node_config {
  // network
  std::string host = "127.0.0.1";  // BASP bind address (loopback unless told otherwise)
  int port = 7420;                 // BASP port; 0 picks a free one
  int metrics_port = 9420;         // HTTP: /metrics, /healthz, /readyz; 0 picks a free one
  std::string node_name;           // stable across restarts; default HOST:PORT
  // HTTP API (OpenAI-compatible; docs/api.md)
  std::string api_host = "127.0.0.1";  // loopback unless told otherwise (and then only with a key)
  std::string api_port;                // "" = 8080, or 0 when port is 0; "off" = no API
  std::string api_key;                 // one key (BRIGADE_API_KEY; quick tests)
  std::string api_keys_file;           // one key a line
  int64_t api_max_body = 8ll << 20;    // bytes of request body
  std::string api_cors_origin;         // Access-Control-Allow-Origin; "" = no CORS
  duration api_request_timeout = std::chrono::minutes(10);  // a request's total deadline
  // model and engine
  std::string model;                // GGUF file; empty = the built-in model (cache dir)
  std::string device = "cpu";       // engine: cpu or cuda:N
  int threads = 0;                  // engine threads, 0 = all cores
  int64_t kv_memory = 256ll << 20;  // bytes of KV cache
  int context = 0;                  // tokens per session, 0 = the model's context length (may exceed it)
  std::string chat_template = "auto";  // auto (from the file) or a format name (chat_template.hpp)
  // batching
  int max_batch = 64;                                    // sequences per step
  duration batch_window = std::chrono::milliseconds(2);  // coalescing deadline when idle
  int step_tokens = 512;                                 // tokens per step (chunked prefill budget)
  int queue_limit = 256;                                 // waiting turns before `overloaded`
  // sessions
  int max_sessions = 4096;                            // live session actors
  int max_tokens = 256;                               // server-side cap per turn
  int max_message_bytes = 16384;                      // largest user message
  std::string context_policy = "drop-oldest";         // or "refuse"
  duration idle_timeout = std::chrono::minutes(10);   // passivate idle sessions
  int stream_window = 64;                             // tokens sent ahead of client credit
  duration stall_timeout = std::chrono::seconds(10);  // stalled reader: cancel its turn
  // supervision
  int max_restarts = 3;  // within restart-window, then failed
  duration restart_window = std::chrono::seconds(60);
  duration restart_backoff = std::chrono::milliseconds(50);  // first restart delay, doubles
  duration drain_grace = std::chrono::seconds(10);           // SIGTERM: finish in-flight turns
  // store
  std::string store = "memory";                   // memory | redis://[user:password@]host:port/db
  std::string store_password_file;  // --store-password-file: the Redis password (overrides the URL's)
  duration retention = std::chrono::minutes(30);  // sliding expiry; 0 keeps forever
  duration lease = std::chrono::seconds(15);      // ownership lease of a live session
  // cluster (a node on Redis is a member; docs/cluster.md)
  std::string cluster;                                   // cluster name; "" = "brigade" (Redis stores only)
  std::string advertise;                                 // HOST:PORT other nodes dial; "" = host:port
  std::string admin_token_file;  // --admin-token-file: accepts `cluster drain` with the token in it
  std::string admin_token;       // read from admin_token_file at start (never printed)
  double capacity = 1;                                   // weight in placement
  duration heartbeat = std::chrono::seconds(1);          // membership heartbeat period
  int heartbeat_misses = 3;                              // missed heartbeats before a member is dead
  duration ping_interval = std::chrono::milliseconds(250);  // peer pings (each with this deadline)
  int ping_misses = 3;                                   // missed pings in a row before a peer is suspected
  duration member_forget = std::chrono::minutes(1);      // dead members leave the table after this
  // scaling (docs/scaling.md): the cluster-wide replica signal
  duration ttft_target = std::chrono::seconds(1);        // time-to-first-token objective
  int min_replicas = 1;                                  // at least 1: the signal comes from the nodes
  int max_replicas = 16;
  duration scale_interval = std::chrono::seconds(5);     // one evaluation of the signal per interval
  duration scale_down_window = std::chrono::minutes(5);  // scale down only after this long below
  // logging
  std::string log_level = "info";  // error | warn | info | debug
};

/// One key: name (as on the command line, without --), help, unit, and how
/// to read and print it.
struct config_key {
  std::string name;
  std::string help;
  std::string unit;  // "", "bytes", "duration", "tokens", ...
  std::function<status(node_config&, const std::string&)> set;
  std::function<std::string(const node_config&)> get;
};

const std::vector<config_key>& config_keys();

/// "BATCH_WINDOW" style environment name of a key.
std::string env_name(const std::string& key);

/// Durations with units: 500us, 2ms, 1.5s, 30s, 30min, 2h (0 needs no unit).
result<duration> parse_duration(const std::string& text);
std::string format_duration(duration d);
/// Sizes: 512, 64KiB, 256MiB, 2GiB.
result<int64_t> parse_bytes(const std::string& text);

/// A secret kept in a file (one line, surrounding white space trimmed);
/// errors name `flag` and the file.
result<std::string> read_secret_file(const std::string& path, const std::string& flag);

/// Reads `key = value` lines ('#' comments, blank lines, values optionally
/// quoted). Unknown keys and malformed lines are errors naming file:line.
result<std::map<std::string, std::string>> read_config_file(const std::string& path);

/// Applies defaults < file < environment < flags. `flags` holds the values
/// given on the command line; `env` looks a variable up (getenv in main).
/// `config_file` may be empty (no file).
result<node_config> resolve_config(const std::string& config_file,
                                   const std::function<const char*(const std::string&)>& env,
                                   const std::map<std::string, std::string>& flags);

/// Every key with its value, one `key = value` per line (for --print-config).
std::string dump_config(const node_config& c);

}  // namespace brigade::runtime
