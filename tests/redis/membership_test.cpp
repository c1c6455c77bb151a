// Cluster membership against a real redis-server (the CTest fixture `redis`,
// label redis): binding a database to one cluster name, one model per
// cluster, one live process per node name, heartbeats and their expiry, and
// death by a majority of reports (runtime/membership.hpp).
#include "runtime/membership.hpp"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "tests/redis/redis_fixture.hpp"

namespace brigade::runtime {
namespace {

void clear_cluster_keys() {
  const std::string cmd = "redis-cli -p " + std::to_string(test::redis_fixture_port()) +
                          " --scan --pattern 'brigade:{cluster}:*' | xargs -r redis-cli -p " +
                          std::to_string(test::redis_fixture_port()) + " DEL >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
}

std::unique_ptr<membership> table_of(const std::string& cluster = "brigade", int expiry_ms = 3000,
                                     int vote_ttl_ms = 1500) {
  redis_url u;
  u.port = test::redis_fixture_port();
  membership_options o;
  o.cluster = cluster;
  o.expiry = std::chrono::milliseconds(expiry_ms);
  o.vote_ttl = std::chrono::milliseconds(vote_ttl_ms);
  return std::make_unique<membership>(u, o);
}

member node(const std::string& name, const std::string& inc, const std::string& model = "tiny:1") {
  member m;
  m.name = name;
  m.address = "127.0.0.1:" + std::to_string(7000 + name.back());
  m.incarnation = inc;
  m.state = "joining";
  m.model = model;
  m.version = 1;
  m.capacity = 2;
  return m;
}

std::pair<store_status, member> join(membership& t, const member& m, const std::string& replaces = "") {
  std::promise<std::pair<store_status, member>> p;
  t.join(m, replaces, [&](store_status s, member live) { p.set_value({s, live}); });
  return p.get_future().get();
}

store_result<member_table> beat(membership& t, const member& m) {
  std::promise<store_result<member_table>> p;
  t.heartbeat(m, [&](store_result<member_table> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

store_result<membership::verdict> report(membership& t, const member& by, const member& suspect) {
  std::promise<store_result<membership::verdict>> p;
  t.report(by, suspect.name, suspect.incarnation, [&](store_result<membership::verdict> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

member active(membership& t, member m) {
  EXPECT_TRUE(join(t, m).first.ok());
  m.state = "active";
  EXPECT_TRUE(beat(t, m).ok());
  return m;
}

TEST(Membership, OneClusterPerDatabaseAndOneModelPerCluster) {
  clear_cluster_keys();
  auto t = table_of("alpha");
  member a = node("a", "i1");
  auto [s, live] = join(*t, a);
  ASSERT_TRUE(s.ok()) << s.message();
  auto other = table_of("beta");
  auto refused = join(*other, node("b", "i2"));
  EXPECT_EQ(refused.first.code(), store_errc::invalid_argument);
  EXPECT_NE(refused.first.message().find("belongs to cluster 'alpha', not 'beta'"), std::string::npos)
      << refused.first.message();
  auto model = join(*t, node("b", "i2", "stories:260K"));
  EXPECT_EQ(model.first.code(), store_errc::invalid_argument);
  EXPECT_NE(model.first.message().find("serves model tiny:1 (node a) but this node serves stories:260K"),
            std::string::npos)
      << model.first.message();
}

TEST(Membership, OneLiveProcessPerName) {
  clear_cluster_keys();
  auto t = table_of();
  member a1 = node("a", "i1");
  ASSERT_TRUE(join(*t, a1).first.ok());
  auto [s, live] = join(*t, node("a", "i2"));
  EXPECT_EQ(s.code(), store_errc::conflict);
  EXPECT_EQ(live.incarnation, "i1");
  EXPECT_EQ(live.address, a1.address);
  // The old process is known gone: the new one takes its place, and the old
  // one's heartbeat is refused from then on.
  member a2 = node("a", "i2");
  ASSERT_TRUE(join(*t, a2, "i1").first.ok());
  auto old = beat(*t, a1);
  EXPECT_EQ(old.error().code(), store_errc::conflict);
  EXPECT_NE(old.error().message().find("incarnation i2"), std::string::npos) << old.error().message();
  auto table = beat(*t, a2);
  ASSERT_TRUE(table.ok()) << table.error().message();
  ASSERT_EQ(table->members.size(), 1u);
  EXPECT_EQ(table->members[0].incarnation, "i2");
  EXPECT_EQ(table->members[0].capacity, 2);
}

TEST(Membership, HeartbeatsCarryLoadAndExpire) {
  clear_cluster_keys();
  auto t = table_of("brigade", 400);
  member a = node("a", "i1"), b = node("b", "i2");
  ASSERT_TRUE(join(*t, a).first.ok());
  ASSERT_TRUE(join(*t, b).first.ok());
  a.state = "active";
  a.load = {{"sessions", 7}, {"ttft_p99_seconds", 0.25}};
  auto table = beat(*t, a);
  ASSERT_TRUE(table.ok()) << table.error().message();
  const member* got = table->find("a");
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->state, "active");
  EXPECT_EQ(got->load.at("sessions"), 7);
  EXPECT_DOUBLE_EQ(got->load.at("ttft_p99_seconds"), 0.25);
  EXPECT_GT(got->heartbeat_ms, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(beat(*t, a).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // b is silent past the expiry, a is not
  table = beat(*t, a);
  ASSERT_TRUE(table.ok());
  ASSERT_NE(table->find("b"), nullptr);
  EXPECT_EQ(table->find("b")->state, "dead");
  EXPECT_NE(table->find("b")->cause.find("no heartbeat"), std::string::npos);
  EXPECT_EQ(beat(*t, b).error().code(), store_errc::conflict);  // b learns it is dead
}

// After a Redis outage every member's heartbeat is old: the first one back
// must not declare the others dead (they could not reach Redis either).
TEST(Membership, AStaleCallerExpiresNobody) {
  clear_cluster_keys();
  auto t = table_of("brigade", 400);
  member a = node("a", "i1"), b = node("b", "i2");
  ASSERT_TRUE(join(*t, a).first.ok());
  ASSERT_TRUE(join(*t, b).first.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // both silent past the expiry
  auto table = beat(*t, a);
  ASSERT_TRUE(table.ok()) << table.error().message();
  ASSERT_NE(table->find("b"), nullptr);
  EXPECT_NE(table->find("b")->state, "dead") << "a was silent as long as b";
  ASSERT_TRUE(beat(*t, b).ok()) << "b is still a member";
  table = beat(*t, a);
  ASSERT_TRUE(table.ok());
  EXPECT_NE(table->find("b")->state, "dead");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(beat(*t, a).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // now only b is silent
  table = beat(*t, a);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->find("b")->state, "dead") << "a fresh caller expires a silent member";
}

TEST(Membership, AMajorityOfReportsDeclaresDeath) {
  clear_cluster_keys();
  auto t = table_of();
  member a = active(*t, node("a", "i1")), b = active(*t, node("b", "i2")), c = active(*t, node("c", "i3"));
  // Three active: the suspect never votes, so both others must report.
  using verdict = membership::verdict;
  auto first = report(*t, a, c);
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ(*first, verdict::pending);
  auto again = report(*t, a, c);  // the same reporter twice is one vote
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, verdict::pending);
  auto second = report(*t, b, c);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, verdict::declared);
  EXPECT_EQ(*report(*t, a, c), verdict::was_dead);
  EXPECT_EQ(beat(*t, c).error().code(), store_errc::conflict);
  // A dead member's reports are refused; a restarted c (new incarnation) is
  // not killed by a report against the old one.
  EXPECT_EQ(report(*t, c, a).error().code(), store_errc::conflict);
  member c2 = active(*t, node("c", "i4"));
  auto stale = report(*t, a, c);
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(*stale, verdict::pending);
  EXPECT_TRUE(beat(*t, c2).ok());
}

store_status withdraw(membership& t, const member& by, const member& suspect) {
  std::promise<store_status> p;
  t.withdraw(by, suspect.incarnation, [&](store_status s) { p.set_value(s); });
  return p.get_future().get();
}

TEST(Membership, VotesGoStaleAndCanBeWithdrawn) {
  clear_cluster_keys();
  using verdict = membership::verdict;
  auto t = table_of("brigade", 3000, 300);
  member a = active(*t, node("a", "i1")), b = active(*t, node("b", "i2")), c = active(*t, node("c", "i3"));
  // a hears c again and withdraws: b's report alone is not a majority.
  EXPECT_EQ(*report(*t, a, c), verdict::pending);
  ASSERT_TRUE(withdraw(*t, a, c).ok());
  EXPECT_EQ(*report(*t, b, c), verdict::pending);
  // Votes that do not overlap within the vote ttl do not add up.
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  EXPECT_EQ(*report(*t, a, c), verdict::pending);
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  EXPECT_EQ(*report(*t, b, c), verdict::pending);
  EXPECT_EQ(*report(*t, a, c), verdict::declared);  // these two overlap
}

TEST(Membership, ADeadVotersVoteDoesNotCount) {
  clear_cluster_keys();
  using verdict = membership::verdict;
  auto t = table_of();
  std::vector<member> m;
  for (const char* n : {"a", "b", "c", "d", "e"}) m.push_back(active(*t, node(n, std::string("i") + n)));
  // Five active: three reports are needed. a and b report e...
  EXPECT_EQ(*report(*t, m[0], m[4]), verdict::pending);
  EXPECT_EQ(*report(*t, m[1], m[4]), verdict::pending);
  // ...then a is declared dead (b, c, d); four active now, three still needed.
  EXPECT_EQ(*report(*t, m[1], m[0]), verdict::pending);
  EXPECT_EQ(*report(*t, m[2], m[0]), verdict::pending);
  EXPECT_EQ(*report(*t, m[3], m[0]), verdict::declared);
  // c's report makes three voters against e, but a's vote no longer counts.
  EXPECT_EQ(*report(*t, m[2], m[4]), verdict::pending);
  EXPECT_EQ(*report(*t, m[3], m[4]), verdict::declared);
}

TEST(Membership, WithTwoMembersTheFirstReportWins) {
  clear_cluster_keys();
  auto t = table_of();
  member a = active(*t, node("a", "i1")), b = active(*t, node("b", "i2"));
  auto r = report(*t, a, b);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, membership::verdict::declared);
  // In a split each side reports the other: the loser's report is refused.
  EXPECT_EQ(report(*t, b, a).error().code(), store_errc::conflict);
  EXPECT_TRUE(beat(*t, a).ok());
}

}  // namespace
}  // namespace brigade::runtime
