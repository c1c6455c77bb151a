#include "actors/node_cluster.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include <future>

#include "runtime/log.hpp"
#include "runtime/protocol.hpp"

namespace brigade::actors {

namespace {

using runtime::member;
using runtime::store_errc;
using runtime::store_status;

std::pair<store_status, member> join_once(runtime::membership& t, const member& me, const std::string& replaces) {
  auto p = std::make_shared<std::promise<std::pair<store_status, member>>>();
  auto f = p->get_future();
  t.join(me, replaces, [p](store_status s, member live) { p->set_value({std::move(s), std::move(live)}); });
  if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    return {store_status{store_errc::io, "no answer from Redis within 10s"}, {}};
  return f.get();
}

/// The incarnation of whoever answers at `address` within 1 s, or "".
std::string who_is_at(caf::actor_system& sys, const std::string& address) {
  std::string host;
  uint16_t port = 0;
  if (!split_address(address, host, port)) return "";
  caf::scoped_actor self{sys};
  caf::actor gw;
  self->request(sys.middleman().actor_handle(), std::chrono::seconds(1), caf::connect_atom::value, host, port)
      .receive([&](const caf::node_id&, caf::strong_actor_ptr& p,
                   const std::set<std::string>&) { gw = caf::actor_cast<caf::actor>(p); },
               [&](caf::error&) {});
  if (!gw) return "";
  std::string inc;
  self->request(gw, std::chrono::seconds(1), whois_atom::value)
      .receive([&](const std::string&, const std::string& answer) { inc = answer; }, [&](caf::error&) {});
  return inc;
}

}  // namespace

bool split_address(const std::string& addr, std::string& host, uint16_t& port) {
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos) return false;
  host = addr.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);  // [v6]:port
  char* end = nullptr;
  const long p = std::strtol(addr.c_str() + colon + 1, &end, 10);
  if (host.empty() || *end != '\0' || p <= 0 || p > 65535) return false;
  port = static_cast<uint16_t>(p);
  return true;
}

status check_cluster_flags(const runtime::node_config& cfg) {
  const bool redis = cfg.store.rfind("redis://", 0) == 0;
  if (!redis && !cfg.cluster.empty())
    return {errc::invalid_argument, "--cluster " + cfg.cluster +
                                        " needs a Redis store (--store redis://host:port/db); with --store " +
                                        cfg.store + " the node runs alone"};
  if (!redis) return {};
  for (char c : cfg.node_name + cfg.cluster)
    if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c)))
      return {errc::invalid_argument, "--node-name and --cluster may not contain spaces or control characters"};
  if ((cfg.host == "0.0.0.0" || cfg.host == "::" || cfg.host.empty()) && cfg.advertise.empty())
    return {errc::invalid_argument, "--host " + cfg.host +
                                        " serves on every interface, so the other nodes cannot know which address "
                                        "to dial: give --advertise HOST:PORT"};
  if (!cfg.advertise.empty() && cfg.advertise.rfind(':') == std::string::npos)
    return {errc::invalid_argument, "--advertise " + cfg.advertise + " is not HOST:PORT"};
  return {};
}

std::string advertised_address(const runtime::node_config& cfg, int bound_port) {
  return cfg.advertise.empty() ? cfg.host + ":" + std::to_string(bound_port) : cfg.advertise;
}

result<cluster_join> join_cluster(caf::actor_system& sys, const runtime::node_config& cfg,
                                  const runtime::redis_url& url, member me) {
  runtime::membership_options o;
  o.cluster = cfg.cluster.empty() ? "brigade" : cfg.cluster;
  const auto beat = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.heartbeat);
  o.expiry = beat * cfg.heartbeat_misses;
  o.forget = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.member_forget), o.expiry);
  // A vote is fresh for twice the time a peer takes to suspect a node (at
  // least 1 s); the reporter renews it at half that while it suspects.
  const auto window = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.ping_interval) * cfg.ping_misses;
  o.vote_ttl = std::max(2 * window, std::chrono::milliseconds(1000));
  auto table = std::make_shared<runtime::membership>(url, o);
  auto [s, live] = join_once(*table, me, "");
  if (s.code() == store_errc::conflict && !live.incarnation.empty()) {
    const std::string answer = who_is_at(sys, live.address);
    if (answer == live.incarnation)
      return status{errc::invalid_argument, "node name " + me.name + " is in use by a live process at " +
                                                live.address + "; stop that one or pick another --node-name"};
    runtime::log(runtime::log_level::info, "",
                 "an earlier process of node " + me.name + " (incarnation " + live.incarnation + " at " +
                     live.address + ") is gone; taking its place");
    std::tie(s, live) = join_once(*table, me, live.incarnation);
  }
  if (!s.ok()) {
    if (s.code() == store_errc::io)
      return status{errc::io, "cannot join cluster " + o.cluster + ": store unavailable (" + s.message() + ")"};
    return status{errc::invalid_argument, s.message()};
  }
  return cluster_join{std::move(table), std::move(me)};
}

}  // namespace brigade::actors
