// The Redis store against a real redis-server (started by the CTest fixture
// `redis`, label `redis`): the store contract (seq and epoch checks, leases),
// key layout and expiry, compaction, garbage and unknown schema versions, an
// unreachable server, and reconnecting after the server comes back.
#include "runtime/redis_store.hpp"
#include "runtime/hashing.hpp"
#include "tests/redis/redis_fixture.hpp"
#include "tests/runtime/store_contract.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <future>

namespace brigade::runtime {
namespace {

int fixture_port() { return test::redis_fixture_port(); }

std::string redis_cli(int port, const std::string& args) {
  const std::string cmd = "redis-cli -p " + std::to_string(port) + " " + args + " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  return out;
}

using contract::acquire;
using contract::load;
using contract::meta;
using contract::turn;
using contract::wait;

std::unique_ptr<session_store> store(int port, store_options o = {}) {
  redis_url u;
  u.port = port;
  return make_redis_store(u, o);
}

std::unique_ptr<session_store> fixture_store(const store_options& o) { return store(fixture_port(), o); }

BRIGADE_STORE_CONTRACT_TESTS(RedisStore, fixture_store)

TEST(RedisStore, ParsesUrls) {
  auto u = parse_redis_url("redis://alice:s3cret@10.0.0.5:6380/2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->user, "alice");
  EXPECT_EQ(u->password, "s3cret");
  EXPECT_EQ(u->host, "10.0.0.5");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 2);
  EXPECT_EQ(parse_redis_url("redis://localhost")->port, 6379);
  EXPECT_FALSE(parse_redis_url("http://x").ok());
  EXPECT_FALSE(parse_redis_url("redis://h:99999").ok());
}

TEST(RedisStore, KeysAreHashTaggedAndSlideTheirExpiry) {
  const int port = fixture_port();
  auto s = store(port);
  const std::string id = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(id), d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, turn(1), d); }).ok());
  EXPECT_GT(std::stol(redis_cli(port, "pttl 'brigade:{" + id + "}:turns'")), 1000 * 60 * 29);
  EXPECT_GT(std::stol(redis_cli(port, "pttl 'brigade:{" + id + "}:meta'")), 1000 * 60 * 29);
  EXPECT_EQ(redis_cli(port, "hget 'brigade:{" + id + "}:meta' owner"), "node-a\n");
  store_options forever;
  forever.retention = std::chrono::microseconds(0);
  auto k = store(port, forever);
  const std::string kept = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { k->create(meta(kept), d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { k->append(kept, 1, turn(1), d); }).ok());
  EXPECT_EQ(redis_cli(port, "pttl 'brigade:{" + kept + "}:turns'"), "-1\n");
}

TEST(RedisStore, CompactionFoldsTurnsIntoTheSnapshotOffTheCommitPath) {
  const int port = fixture_port();
  store_options o;
  o.compact_min = 4;
  auto s = store(port, o);
  const std::string id = random_hex(16);
  const std::string turns = "'brigade:{" + id + "}:turns'", snap = "'brigade:{" + id + "}:snap'";
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(id), d); }).ok());
  for (uint64_t seq = 1; seq <= 30; ++seq) {
    ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, turn(seq), d); }).ok());
    auto now = load(*s, id);  // consistent at every point, whatever compaction is doing
    ASSERT_TRUE(now.ok()) << now.error().message();
    ASSERT_EQ(now->turns.size(), seq);
  }
  ASSERT_TRUE(wait([&](auto d) { s->compact(id, d); }).ok());
  EXPECT_EQ(redis_cli(port, "llen " + turns), "0\n");
  EXPECT_EQ(redis_cli(port, "hget 'brigade:{" + id + "}:meta' snap_seq"), "30\n");
  EXPECT_GT(std::stol(redis_cli(port, "pttl " + snap)), 1000 * 60 * 29);
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, turn(31), d); }).ok());
  auto all = load(*s, id);
  ASSERT_TRUE(all.ok()) << all.error().message();
  ASSERT_EQ(all->turns.size(), 31u);
  for (uint64_t i = 0; i < 31; ++i) {
    EXPECT_EQ(all->turns[i].seq, i + 1);
    EXPECT_EQ(all->turns[i].user, "u" + std::to_string(i + 1));
  }
  // The owner's restart sees the same history through the snapshot.
  auto again = acquire(*s, id, "node-a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->turns.size(), 31u);
  // A damaged snapshot fails that session with a clear error.
  redis_cli(port, "set " + snap + " 'not a snapshot'");
  auto bad = load(*s, id);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), store_errc::malformed);
  EXPECT_NE(bad.error().message().find("the stored snapshot cannot be read"), std::string::npos)
      << bad.error().message();
  EXPECT_TRUE(wait([&](auto d) { s->remove(id, d); }).ok());
  EXPECT_EQ(redis_cli(port, "exists " + snap), "0\n");
  // A session stored before compaction existed (no snap_seq field) compacts too.
  const std::string old = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(old), d); }).ok());
  redis_cli(port, "hdel 'brigade:{" + old + "}:meta' snap_seq");
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(wait([&](auto d) { s->append(old, 1, turn(seq), d); }).ok());
  redis_cli(port, "hdel 'brigade:{" + old + "}:meta' snap_seq");
  ASSERT_TRUE(wait([&](auto d) { s->compact(old, d); }).ok());
  EXPECT_EQ(redis_cli(port, "llen 'brigade:{" + old + "}:turns'"), "0\n");
  EXPECT_EQ(load(*s, old)->turns.size(), 3u);
}

TEST(RedisStore, CompactionWorkStaysLogarithmicInTheHistory) {
  // The list is folded when it is as long as the snapshot: 1024 turns with
  // compact_min 4 fold at about 4, 8, 16, ..., 1024 turns, 9 times, each
  // writing the snapshot once (a SET inside the compaction script). Appends
  // that arrive while a compaction runs must not queue more of them.
  const int port = fixture_port();
  store_options o;
  o.compact_min = 4;
  auto s = store(port, o);
  const std::string id = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(id), d); }).ok());
  redis_cli(port, "config resetstat");
  for (uint64_t seq = 1; seq <= 1024; ++seq) ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, turn(seq), d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { s->compact(id, d); }).ok());  // waits for one in flight, then folds the rest
  const std::string stats = redis_cli(port, "info commandstats");
  const size_t at = stats.find("cmdstat_set:calls=");
  ASSERT_NE(at, std::string::npos) << stats;
  const long sets = std::stol(stats.substr(at + 18));
  EXPECT_GE(sets, 7) << stats;
  EXPECT_LE(sets, 12) << "compactions ran " << sets << " times for 1024 turns";
  EXPECT_EQ(load(*s, id)->turns.size(), 1024u);
}

TEST(RedisStore, DamagedRecordsFailOnlyThatSessionWithAClearError) {
  const int port = fixture_port();
  auto s = store(port);
  const std::string bad = random_hex(16), good = random_hex(16), old = random_hex(16);
  for (const auto& id : {bad, good, old}) ASSERT_TRUE(wait([&](auto d) { s->create(meta(id), d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { s->append(good, 1, turn(1), d); }).ok());
  redis_cli(port, "rpush 'brigade:{" + bad + "}:turns' 'certainly not msgpack'");
  redis_cli(port, "hset 'brigade:{" + old + "}:meta' v 99");
  auto b = load(*s, bad);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), store_errc::malformed);
  EXPECT_NE(b.error().message().find("session " + bad + ": stored turn 1 cannot be read"), std::string::npos)
      << b.error().message();
  auto o = load(*s, old);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message().find("schema version '99'"), std::string::npos) << o.error().message();
  auto oa = acquire(*s, old, "node-a");  // restoring refuses it the same way
  ASSERT_FALSE(oa.ok());
  EXPECT_EQ(oa.error().code(), store_errc::malformed);
  EXPECT_NE(oa.error().message().find("schema version '99'"), std::string::npos) << oa.error().message();
  EXPECT_EQ(acquire(*s, bad, "node-a").error().code(), store_errc::malformed);
  EXPECT_TRUE(load(*s, good).ok());  // the others go on
}

TEST(RedisStore, UnreachableServerFailsWithTheCauseThenReconnects) {
  // Our own durable server on a port we choose, so the test can stop it.
  const int port = fixture_port() + 1000 > 65000 ? fixture_port() - 1000 : fixture_port() + 1000;
  const std::string dir = ::testing::TempDir() + "brigade_redis_" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  const std::string start = "redis-server --port " + std::to_string(port) +
                            " --bind 127.0.0.1 --daemonize yes --appendonly yes --appendfsync always --save '' --dir " +
                            dir + " --logfile " + dir + "/log";
  auto s = store(port);
  const std::string id = random_hex(16);
  const store_status down = wait([&](auto d) { s->create(meta(id), d); });
  EXPECT_EQ(down.code(), store_errc::io);
  EXPECT_NE(down.message().find("redis 127.0.0.1:" + std::to_string(port)), std::string::npos) << down.message();
  EXPECT_NE(down.message().find("refused"), std::string::npos) << down.message();
  ASSERT_EQ(std::system(start.c_str()), 0);
  store_status up;
  for (int i = 0; i < 100 && !(up = wait([&](auto d) { s->create(meta(id), d); })).ok(); ++i) usleep(50000);
  ASSERT_TRUE(up.ok()) << up.message();
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, {1, "a", "b", 0, 0, 0}, d); }).ok());
  redis_cli(port, "shutdown");  // AOF with appendfsync always: the acknowledged turn is on disk
  EXPECT_EQ(wait([&](auto d) { s->append(id, 1, {2, "c", "d", 0, 0, 0}, d); }).code(), store_errc::io);
  ASSERT_EQ(std::system(start.c_str()), 0);
  store_status again;
  for (int i = 0; i < 100 && !(again = wait([&](auto d) { s->append(id, 1, {2, "c", "d", 0, 0, 0}, d); })).ok(); ++i)
    usleep(50000);
  EXPECT_TRUE(again.ok()) << again.message();
  auto snap = load(*s, id);
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->turns.size(), 2u);  // the turn acknowledged before the restart survived it
  redis_cli(port, "shutdown nosave");
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace brigade::runtime
