// `brigade scaling simulate`: the shipped replica formula (runtime/scaling.hpp)
// driven by a load trace on standard input, one evaluation per JSON line, so
// that the simulation in bench/scaling_sim.py runs exactly the nodes' code.
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "app/server_commands.hpp"
#include "runtime/config.hpp"
#include "runtime/scaling.hpp"

namespace brigade::app {

namespace {
using ojson = nlohmann::ordered_json;

double number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return 0;
  if (!it->is_number()) throw std::invalid_argument(std::string("\"") + key + "\" must be a number");
  return it->get<double>();
}

}  // namespace

int scaling_simulate(const scaling_cli& a) {
  runtime::scaling_params p;
  auto seconds = [](const std::string& flag, const std::string& text, double& out) -> status {
    auto d = runtime::parse_duration(text);
    if (!d) return {errc::invalid_argument, flag + ": " + d.error().message()};
    out = std::chrono::duration<double>(*d).count();
    return {};
  };
  for (auto [flag, text, out] : {std::tuple{"--ttft-target", a.ttft_target, &p.ttft_target_s},
                                 std::tuple{"--scale-interval", a.interval, &p.interval_s},
                                 std::tuple{"--scale-down-window", a.down_window, &p.down_window_s},
                                 std::tuple{"--backlog-horizon", a.backlog, &p.backlog_horizon_s}})
    if (auto s = seconds(flag, text, *out); !s) return fail(exit_bad_input, s.message());
  if (a.min_replicas < 1) return fail(exit_bad_input, "--min-replicas must be at least 1 (the signal comes from the nodes)");
  if (a.max_replicas < a.min_replicas) return fail(exit_bad_input, "--max-replicas must be at least --min-replicas");
  p.min_replicas = a.min_replicas;
  p.max_replicas = a.max_replicas;
  runtime::replica_controller ctl(p);
  std::string line;
  for (int n = 1; std::getline(std::cin, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::vector<runtime::member_load> members;
    double t = 0;
    try {
      const auto j = nlohmann::json::parse(line);
      t = number(j, "t");
      for (const auto& m : j.at("members")) {
        runtime::member_load l;
        l.name = m.value("name", std::string("node"));
        l.state = m.value("state", std::string("active"));
        l.f.arrivals = number(m, "arrivals");
        l.f.queue_depth = number(m, "queue_depth");
        l.f.capacity = number(m, "capacity");
        l.f.prompt_tokens = number(m, "prompt_tokens");
        l.f.generated_tokens = number(m, "generated_tokens");
        l.f.kv_wanted_tokens = number(m, "kv_wanted_tokens");
        l.f.kv_capacity_tokens = number(m, "kv_capacity_tokens");
        members.push_back(std::move(l));
      }
    } catch (const std::exception& e) {
      return fail(exit_bad_input, "standard input line " + std::to_string(n) + ": " + e.what() +
                                      "; each line is {\"t\": seconds, \"members\": [{\"name\", \"state\", "
                                      "\"arrivals\", \"queue_depth\", \"capacity\", ...}]}");
    }
    const auto d = ctl.evaluate(members, t);
    ojson ratios = ojson::object();
    for (const auto& m : members) ratios[m.name] = runtime::load_ratio(m.f, p.ttft_target_s);
    const ojson out = {{"t", t},
                       {"desired_replicas", d.desired},
                       {"changed", d.changed},
                       {"reason", d.reason},
                       {"need", d.need.max()},
                       {"tokens", d.need.tokens},
                       {"memory", d.need.memory},
                       {"measured", d.need.measured},
                       {"serving", d.need.serving},
                       {"down_candidate", d.down_candidate},
                       {"load_ratio", ratios}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(stdout);
  }
  return exit_ok;
}

}  // namespace brigade::app
