#include "runtime/config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace brigade::runtime {

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

status bad(const std::string& value, const char* what) {
  return {errc::invalid_argument, "'" + value + "' is not " + what};
}

result<int64_t> parse_int(const std::string& text, int64_t lo, int64_t hi) {
  const std::string t = trim(text);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0' || errno != 0) return bad(text, "an integer");
  if (v < lo || v > hi)
    return status{errc::invalid_argument,
                  "'" + text + "' is outside " + std::to_string(lo) + ".." + std::to_string(hi)};
  return static_cast<int64_t>(v);
}

config_key int_key(const char* name, const char* help, const char* unit, int node_config::*field, int lo, int hi) {
  return {name, help, unit,
          [field, lo, hi](node_config& c, const std::string& v) -> status {
            auto r = parse_int(v, lo, hi);
            if (!r) return r.error();
            c.*field = static_cast<int>(*r);
            return {};
          },
          [field](const node_config& c) { return std::to_string(c.*field); }};
}

config_key string_key(const char* name, const char* help, std::string node_config::*field,
                      std::vector<std::string> allowed = {}) {
  return {name, help, "",
          [field, allowed](node_config& c, const std::string& v) -> status {
            const std::string t = trim(v);
            if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), t) == allowed.end()) {
              std::string list;
              for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
              return {errc::invalid_argument, "'" + v + "' is not one of " + list};
            }
            c.*field = t;
            return {};
          },
          [field](const node_config& c) { return c.*field; }};
}

config_key duration_key(const char* name, const char* help, duration node_config::*field) {
  return {name, help, "duration",
          [field](node_config& c, const std::string& v) -> status {
            auto d = parse_duration(v);
            if (!d) return d.error();
            c.*field = *d;
            return {};
          },
          [field](const node_config& c) { return format_duration(c.*field); }};
}

}  // namespace

std::string env_name(const std::string& key) {
  std::string e = "BRIGADE_";
  for (char c : key) e += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return e;
}

result<duration> parse_duration(const std::string& text) {
  const std::string t = trim(text);
  size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  const std::string num = t.substr(0, i), unit = trim(t.substr(i));
  char* end = nullptr;
  const double v = std::strtod(num.c_str(), &end);
  const status err{errc::invalid_argument, "'" + text + "' is not a duration; use e.g. 500us, 2ms, 1.5s, 30min, 2h"};
  if (num.empty() || *end != '\0' || !std::isfinite(v) || v < 0) return err;
  double us;
  if (unit == "us")
    us = v;
  else if (unit == "ms")
    us = v * 1e3;
  else if (unit == "s")
    us = v * 1e6;
  else if (unit == "min")
    us = v * 60e6;
  else if (unit == "h")
    us = v * 3600e6;
  else if (unit.empty() && v == 0)
    us = 0;
  else
    return err;
  if (us > 1e15) return err;
  return duration(static_cast<int64_t>(std::llround(us)));
}

std::string format_duration(duration d) {
  const int64_t us = d.count();
  if (us == 0) return "0";
  if (us % 3600000000ll == 0) return std::to_string(us / 3600000000ll) + "h";
  if (us % 60000000ll == 0) return std::to_string(us / 60000000ll) + "min";
  if (us % 1000000 == 0) return std::to_string(us / 1000000) + "s";
  if (us % 1000 == 0) return std::to_string(us / 1000) + "ms";
  return std::to_string(us) + "us";
}

result<int64_t> parse_bytes(const std::string& text) {
  const std::string t = trim(text);
  size_t i = 0;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
  const std::string unit = trim(t.substr(i));
  auto n = parse_int(t.substr(0, i), 0, int64_t{1} << 50);
  const status err{errc::invalid_argument, "'" + text + "' is not a size; use e.g. 512MiB, 2GiB"};
  if (!n || i == 0) return err;
  int64_t mult = 1;
  if (unit == "KiB")
    mult = 1 << 10;
  else if (unit == "MiB")
    mult = 1 << 20;
  else if (unit == "GiB")
    mult = 1 << 30;
  else if (!unit.empty() && unit != "B")
    return err;
  return *n * mult;
}

const std::vector<config_key>& config_keys() {
  static const std::vector<config_key> keys = [] {
    std::vector<config_key> k;
    k.push_back(string_key("host", "address to serve BASP on (loopback unless told otherwise)", &node_config::host));
    k.push_back(int_key("port", "BASP port (0: a free one, printed once ready)", "", &node_config::port, 0, 65535));
    k.push_back(int_key("metrics-port", "HTTP port for /metrics, /healthz, /readyz (0: a free one)", "",
                        &node_config::metrics_port, 0, 65535));
    k.push_back(string_key("api-host", "address of the HTTP API (a non-loopback one needs an API key)",
                           &node_config::api_host));
    k.push_back({"api-port", "HTTP API port (default 8080, or 0 with --port 0; 0: a free one; off: no API)", "",
                 [](node_config& c, const std::string& v) -> status {
                   const std::string t = trim(v);
                   if (t.empty() || t == "off") {
                     c.api_port = t;
                     return {};
                   }
                   char* end = nullptr;
                   const long x = std::strtol(t.c_str(), &end, 10);
                   if (*end != '\0' || x < 0 || x > 65535) return bad(v, "a port from 0 to 65535, or off");
                   c.api_port = std::to_string(x);
                   return {};
                 },
                 [](const node_config& c) { return c.api_port.empty() ? std::string("\"\"") : c.api_port; }});
    k.push_back(string_key("api-key", "an API key clients send as a Bearer token (for quick tests; prefer api-keys-file)",
                           &node_config::api_key));
    k.push_back(string_key("api-keys-file", "file of API keys, one a line (Bearer tokens of the HTTP API)",
                           &node_config::api_keys_file));
    k.push_back({"api-max-body", "largest HTTP API request body", "bytes",
                 [](node_config& c, const std::string& v) -> status {
                   auto b = parse_bytes(v);
                   if (!b) return b.error();
                   if (*b < 1024) return bad(v, "a size of at least 1KiB");
                   c.api_max_body = *b;
                   return {};
                 },
                 [](const node_config& c) {
                   if (c.api_max_body % (1 << 20) == 0) return std::to_string(c.api_max_body >> 20) + "MiB";
                   if (c.api_max_body % 1024 == 0) return std::to_string(c.api_max_body >> 10) + "KiB";
                   return std::to_string(c.api_max_body);
                 }});
    k.push_back(string_key("api-cors-origin", "origin browsers may call the HTTP API from (off when empty)",
                           &node_config::api_cors_origin));
    k.push_back(duration_key("api-request-timeout", "total deadline of one HTTP API request",
                             &node_config::api_request_timeout));
    k.push_back(
        string_key("node-name", "stable node name for leases and logs (default HOST:PORT)", &node_config::node_name));
    k.push_back(string_key("model", "GGUF model file (default: the built-in model)", &node_config::model));
    k.push_back(string_key("device", "engine backend: cpu, or cuda:N for CUDA device N (builds with nvcc)",
                           &node_config::device));
    k.push_back(int_key("threads", "engine threads (0: all cores)", "", &node_config::threads, 0, 1024));
    k.push_back({"kv-memory", "KV cache size", "bytes",
                 [](node_config& c, const std::string& v) -> status {
                   auto b = parse_bytes(v);
                   if (!b) return b.error();
                   c.kv_memory = *b;
                   return {};
                 },
                 [](const node_config& c) { return std::to_string(c.kv_memory >> 20) + "MiB"; }});
    k.push_back(int_key("context", "tokens per session (0: the model's context length; more is allowed, with a warning)",
                        "tokens", &node_config::context, 0, 1 << 20));
    k.push_back(string_key("chat-template",
                           "chat format: auto (from the file's template and vocabulary), raw (base models: turns as "
                           "one continuing text), or chatml, llama2, llama3, mistral-v1/v3/v3-tekken/v7, phi3, zephyr, "
                           "gemma, ...",
                           &node_config::chat_template));
    k.push_back(int_key("max-batch", "sequences in one engine step", "", &node_config::max_batch, 1, 1024));
    k.push_back(
        duration_key("batch-window", "how long an idle batch loop waits to fill a batch", &node_config::batch_window));
    k.push_back(int_key("step-tokens", "tokens per engine step (chunked prefill budget)", "tokens",
                        &node_config::step_tokens, 1, 1 << 16));
    k.push_back(int_key("queue-limit", "turns waiting for the engine before new ones are refused", "",
                        &node_config::queue_limit, 1, 1 << 20));
    k.push_back(int_key("max-sessions", "live sessions on this node", "", &node_config::max_sessions, 1, 1 << 24));
    k.push_back(int_key("max-tokens", "server-side cap on tokens generated per turn", "tokens",
                        &node_config::max_tokens, 1, 1 << 20));
    k.push_back(int_key("max-message-bytes", "largest accepted user message", "bytes", &node_config::max_message_bytes,
                        1, 1 << 24));
    k.push_back(string_key("context-policy", "when a conversation outgrows the context: drop-oldest turns or refuse",
                           &node_config::context_policy, {"drop-oldest", "refuse"}));
    k.push_back(duration_key("idle-timeout", "passivate sessions idle this long", &node_config::idle_timeout));
    k.push_back(int_key("stream-window",
                        "tokens streamed ahead of the client's credit (>= 16: clients grant 8 at a time)", "tokens",
                        &node_config::stream_window, 16, 1 << 20));
    k.push_back(duration_key("stall-timeout", "cancel a turn whose reader grants no credit this long",
                             &node_config::stall_timeout));
    k.push_back(int_key("max-restarts", "session restarts allowed within restart-window", "",
                        &node_config::max_restarts, 0, 1000));
    k.push_back(duration_key("restart-window", "window for max-restarts", &node_config::restart_window));
    k.push_back(
        duration_key("restart-backoff", "first restart delay (doubles each time)", &node_config::restart_backoff));
    k.push_back(duration_key("drain-grace", "on SIGTERM, time to finish in-flight turns", &node_config::drain_grace));
    k.push_back(string_key("store", "memory, or redis://[user:password@]host:port/db", &node_config::store));
    k.push_back(string_key("store-password-file",
                           "file holding the Redis password (instead of one in the --store URL; e.g. a mounted Secret)",
                           &node_config::store_password_file));
    k.push_back(
        duration_key("retention", "sliding expiry of stored sessions (0: keep forever)", &node_config::retention));
    k.push_back(duration_key("lease",
                             "ownership lease on a live session, renewed while it lives; a node restarted with the "
                             "same node-name takes its sessions back at once, another node after the lease expires",
                             &node_config::lease));
    k.push_back(string_key("cluster",
                           "cluster name in the Redis database (default brigade; one cluster per database; not with "
                           "--store memory)",
                           &node_config::cluster));
    k.push_back(string_key("advertise",
                           "HOST:PORT the other nodes dial (default: host:port; required when host is 0.0.0.0)",
                           &node_config::advertise));
    k.push_back(string_key("admin-token-file",
                           "file holding the admin token that `cluster drain` must present (none: drains refused)",
                           &node_config::admin_token_file));
    k.push_back({"capacity", "this node's weight in placement (0: it takes no new sessions, only forwards)", "",
                 [](node_config& c, const std::string& v) -> status {
                   char* end = nullptr;
                   const std::string t = trim(v);
                   const double x = std::strtod(t.c_str(), &end);
                   if (t.empty() || *end != '\0' || !std::isfinite(x) || x < 0 || x > 1e6)
                     return bad(v, "a weight (a number from 0 to 1e6; 0: it takes no new sessions)");
                   c.capacity = x;
                   return {};
                 },
                 [](const node_config& c) {
                   std::string s = std::to_string(c.capacity);
                   s.erase(s.find_last_not_of('0') + 1);
                   if (s.back() == '.') s.pop_back();
                   return s;
                 }});
    k.push_back(duration_key("heartbeat", "membership heartbeat period", &node_config::heartbeat));
    k.push_back(int_key("heartbeat-misses", "heartbeats a member may miss before it is dead", "",
                        &node_config::heartbeat_misses, 2, 100));
    k.push_back(duration_key("ping-interval", "period (and deadline) of the pings between members",
                             &node_config::ping_interval));
    k.push_back(int_key("ping-misses", "pings in a row a peer may miss before it is suspected", "",
                        &node_config::ping_misses, 1, 100));
    k.push_back(duration_key("member-forget", "dead members leave the membership table after this",
                             &node_config::member_forget));
    k.push_back(duration_key("ttft-target", "time-to-first-token objective the replica signal keeps (docs/scaling.md)",
                             &node_config::ttft_target));
    k.push_back(int_key("min-replicas",
                        "fewest nodes the replica signal asks for (at least 1: the signal comes from the nodes)", "",
                        &node_config::min_replicas, 1, 100000));
    k.push_back(int_key("max-replicas", "most nodes the replica signal asks for", "", &node_config::max_replicas, 1,
                        100000));
    k.push_back(duration_key("scale-interval", "how often each node evaluates the replica signal",
                             &node_config::scale_interval));
    k.push_back(duration_key("scale-down-window",
                             "the signal goes down only after the load needed fewer nodes for this long",
                             &node_config::scale_down_window));
    k.push_back(string_key("log-level", "error, warn, info or debug (conversation text only at debug)",
                           &node_config::log_level, {"error", "warn", "info", "debug"}));
    return k;
  }();
  return keys;
}

result<std::string> read_secret_file(const std::string& path, const std::string& flag) {
  std::ifstream in(path);
  if (!in) return status{errc::io, flag + " " + path + ": cannot open the file"};
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text = trim(text);
  if (text.empty()) return status{errc::invalid_argument, flag + " " + path + ": the file is empty; write the secret into it"};
  if (text.find_first_of("\r\n") != std::string::npos)
    return status{errc::invalid_argument, flag + " " + path + ": the file holds more than one line; keep only the secret"};
  return text;
}

result<std::map<std::string, std::string>> read_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return status{errc::io, path + ": cannot open the config file"};
  std::map<std::string, std::string> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const size_t hash = line.find('#');
    const std::string l = trim(hash == std::string::npos ? line : line.substr(0, hash));
    if (l.empty()) continue;
    const size_t eq = l.find('=');
    const std::string where = path + ":" + std::to_string(n);
    if (eq == std::string::npos) return status{errc::invalid_argument, where + ": expected 'key = value'"};
    const std::string key = trim(l.substr(0, eq));
    std::string value = trim(l.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    const auto& keys = config_keys();
    if (std::none_of(keys.begin(), keys.end(), [&](const config_key& k) { return k.name == key; }))
      return status{errc::invalid_argument, where + ": unknown key '" + key + "'"};
    out[key] = value;
  }
  return out;
}

result<node_config> resolve_config(const std::string& config_file,
                                   const std::function<const char*(const std::string&)>& env,
                                   const std::map<std::string, std::string>& flags) {
  node_config c;
  std::map<std::string, std::string> file;
  if (!config_file.empty()) {
    auto f = read_config_file(config_file);
    if (!f) return f.error();
    file = std::move(*f);
  }
  for (const auto& k : config_keys()) {
    std::string source, value;
    if (auto it = flags.find(k.name); it != flags.end()) {
      source = "--" + k.name;
      value = it->second;
    } else if (const char* e = env ? env(env_name(k.name)) : nullptr) {
      source = env_name(k.name);
      value = e;
    } else if (auto jt = file.find(k.name); jt != file.end()) {
      source = config_file + ": " + k.name;
      value = jt->second;
    } else {
      continue;
    }
    if (auto s = k.set(c, value); !s) return status{errc::invalid_argument, source + ": " + s.message()};
  }
  if (c.min_replicas > c.max_replicas)
    return status{errc::invalid_argument, "min-replicas " + std::to_string(c.min_replicas) + " is above max-replicas " +
                                              std::to_string(c.max_replicas) + "; raise --max-replicas or lower --min-replicas"};
  if (c.ttft_target.count() <= 0)
    return status{errc::invalid_argument, "ttft-target must be above 0 (e.g. 1s): it is the objective the replica signal keeps"};
  if (c.scale_interval < std::chrono::milliseconds(100))
    return status{errc::invalid_argument, "scale-interval " + format_duration(c.scale_interval) +
                                              " is too short; use at least 100ms (default 5s)"};
  return c;
}

std::string dump_config(const node_config& c) {
  std::string out;
  for (const auto& k : config_keys()) out += k.name + " = " + k.get(c) + "\n";
  return out;
}

}  // namespace brigade::runtime
