// runtime::dashboard as a plain class: the events it derives from samples,
// the bounded history, and the JSON bodies of /api/v1/{cluster,events,series}.
#include "runtime/dashboard.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace brigade::runtime;
using json = nlohmann::json;

namespace {

dash_node node(const std::string& name, const std::string& state, std::map<std::string, double> f = {}) {
  dash_node n;
  n.name = name;
  n.address = "127.0.0.1:" + std::to_string(7000 + name[0]);
  n.state = state;
  n.model = "m";
  n.version = 2;
  n.figures = std::move(f);
  return n;
}

dash_snapshot snap(double t, std::vector<dash_node> nodes, const std::string& self = "a") {
  dash_snapshot s;
  s.cluster = "brigade";
  s.self = self;
  s.time = t;
  s.nodes = std::move(nodes);
  return s;
}

std::vector<std::string> kinds(const dashboard& d, double since = 0) {
  std::vector<std::string> out;
  for (const auto& e : d.events(since)) out.push_back(e.node + ":" + e.kind);
  return out;
}

}  // namespace

TEST(Dashboard, FirstSampleSaysStartedThenMembershipChangesBecomeEvents) {
  dashboard d;
  d.update(snap(100, {node("a", "joining")}));
  EXPECT_EQ(kinds(d), (std::vector<std::string>{"a:started"}));
  d.update(snap(101, {node("a", "active"), node("b", "joining")}));
  EXPECT_EQ(kinds(d, 100), (std::vector<std::string>{"a:active", "b:joined"}));
  d.update(snap(102, {node("a", "active"), node("b", "active")}));
  d.update(snap(103, {node("a", "active"), node("b", "draining")}));
  d.update(snap(104, {node("a", "active"), node("b", "dead")}));
  d.update(snap(105, {node("a", "active")}));  // a dead member dropped from the table: no second event
  EXPECT_EQ(kinds(d, 101), (std::vector<std::string>{"b:active", "b:draining", "b:dead"}));
  d.update(snap(106, {node("a", "active"), node("c", "active")}));
  d.update(snap(107, {node("a", "active")}));  // c left without dying
  EXPECT_EQ(kinds(d, 105), (std::vector<std::string>{"c:joined", "c:left"}));
}

TEST(Dashboard, SnapshotsBeforeTheFirstTableReadAreNoBaseline) {
  // A cluster node samples itself before its first heartbeat answer; the
  // members already there when the table arrives did not just join.
  dashboard d;
  auto alone = snap(1, {node("a", "joining")});
  alone.complete = false;
  d.update(alone);
  d.update(snap(2, {node("a", "joining"), node("b", "active"), node("c", "active")}));
  EXPECT_EQ(kinds(d), (std::vector<std::string>{"a:started"}));
  d.update(snap(3, {node("a", "active"), node("b", "active")}));
  EXPECT_EQ(kinds(d, 2), (std::vector<std::string>{"a:active", "c:left"}));
}

TEST(Dashboard, PeersCountersThatGrowAreEventsButNotThisNodesOrAFallingCounter) {
  dashboard d;
  d.update(snap(1, {node("a", "active", {{"session_restarts", 0}}), node("b", "active", {{"session_restarts", 1}})}));
  d.update(snap(2, {node("a", "active", {{"session_restarts", 5}}),  // this node reports its own (add_event)
                    node("b", "active", {{"session_restarts", 3}, {"session_handoffs_failover", 2}})}));
  auto ev = d.events(1);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].node, "b");
  EXPECT_EQ(ev[0].kind, "session_restart");
  EXPECT_EQ(ev[0].detail, "2 sessions restarted by its supervisor");
  EXPECT_EQ(ev[1].kind, "failover");
  EXPECT_EQ(ev[1].detail, "took over 2 sessions from a node declared dead");
  // b restarted as a new process: its counters start again at 0.
  d.update(snap(3, {node("a", "active"), node("b", "active", {{"session_restarts", 0}})}));
  EXPECT_TRUE(d.events(2).empty());
}

TEST(Dashboard, EventsAreBoundedAndFilteredBySince) {
  dashboard d(10, 4);
  for (int i = 0; i < 10; ++i) d.add_event({static_cast<double>(i), "a", "session_restart", "s" + std::to_string(i), ""});
  auto all = d.events();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.front().session, "s6");
  EXPECT_EQ(d.events(8).size(), 1u);
  auto j = json::parse(d.events_json(7));
  ASSERT_EQ(j["events"].size(), 2u);
  EXPECT_EQ(j["events"][0]["session"], "s8");
  for (const char* k : {"time", "node", "kind", "session", "detail"}) EXPECT_TRUE(j["events"][0].contains(k)) << k;
}

TEST(Dashboard, SeriesKeepTheLastPointsPerNodeAndSkipDeadNodes) {
  dashboard d(5);  // 5 points: 5 seconds at one sample a second
  for (int t = 0; t <= 5; ++t)
    d.update(snap(t, {node("a", "active", {{"tokens_per_second", 10.0 * t}}),
                      node("b", t <= 2 ? "active" : "dead", {{"tokens_per_second", 1}})}));
  auto j = json::parse(d.series_json(600));  // clamped to the history
  const auto& a = j["nodes"]["a"]["tokens_per_second"];
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[0][0], 1.0);
  EXPECT_EQ(a[4][1], 50.0);
  for (size_t i = 0; i < dash_series_count; ++i) EXPECT_TRUE(j["nodes"]["a"].contains(dash_series_names[i]));
  // b died after t=2: no points since (a gap), then it ages out with the history.
  const auto& b = j["nodes"]["b"]["tokens_per_second"];
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.back()[0], 2.0);
  d.update(snap(7, {node("a", "active")}));
  EXPECT_FALSE(json::parse(d.series_json(600))["nodes"].contains("b"));
  // ?seconds=N: the points of the last N seconds.
  EXPECT_EQ(json::parse(d.series_json(2))["nodes"]["a"]["tokens_per_second"].size(), 1u);  // t=7 (t=6 missing)
}

TEST(Dashboard, ClusterJsonIsTheClusterStatusObject) {
  dashboard d;
  d.update(snap(1, {node("b", "active", {{"desired_replicas", 3}, {"sessions", 4}}),
                    node("a", "active", {{"desired_replicas", 2}}), node("c", "dead", {{"desired_replicas", 9}})}));
  auto j = json::parse(d.cluster_json());
  EXPECT_EQ(j["cluster"], "brigade");
  EXPECT_EQ(j["desired_replicas"], 3);  // the live members' largest: c is dead
  EXPECT_EQ(j["self"], "a");
  ASSERT_EQ(j["nodes"].size(), 3u);
  EXPECT_EQ(j["nodes"][0]["name"], "a");  // by name
  EXPECT_EQ(j["nodes"][1]["sessions"], 4);
  for (const char* k : {"name", "address", "state", "model", "version", "capacity", "sessions", "queue_depth",
                        "tokens_per_second", "ttft_p50_seconds", "ttft_p99_seconds", "mean_batch_size",
                        "engine_busy_ratio", "kv_cache_usage_ratio", "session_restarts", "requests_rejected",
                        "heartbeat_age_seconds"})
    EXPECT_TRUE(j["nodes"][0].contains(k)) << k;
  // A single node on the memory store: no cluster name, and no signal yet.
  dash_snapshot s = snap(1, {node("a", "active")});
  s.cluster = "";
  auto one = json::parse(cluster_status_json(s, false));
  EXPECT_TRUE(one["cluster"].is_null());
  EXPECT_TRUE(one["desired_replicas"].is_null());
  EXPECT_FALSE(one.contains("self"));
}
