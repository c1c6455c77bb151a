// The Redis store against a real redis-server (started by the CTest fixture
// `redis`, label `redis`): round trips, the seq and epoch checks, garbage and
// unknown schema versions, an unreachable server, and reconnecting after the
// server comes back.
#include "runtime/redis_store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <future>

namespace brigade::runtime {
namespace {

int fixture_port() {
  std::ifstream in(std::string(BRIGADE_REDIS_FIXTURE_DIR) + "/port");
  int port = 0;
  in >> port;
  EXPECT_GT(port, 0) << "no redis-server from the fixture (ctest -L redis runs it)";
  return port;
}

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

status wait(const std::function<void(session_store::done_fn)>& call) {
  std::promise<status> p;
  call([&](status s) { p.set_value(s); });
  return p.get_future().get();
}

result<session_snapshot> load(session_store& s, const std::string& id) {
  std::promise<result<session_snapshot>> p;
  s.load(id, [&](result<session_snapshot> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

session_meta meta(const std::string& id) {
  session_meta m;
  m.id = id;
  m.token_hash = sha256_hex("token");
  m.model = "tiny:119104";
  m.owner = "node-a";
  m.created_ms = now_ms();
  return m;
}

std::unique_ptr<session_store> store(int port, std::chrono::microseconds retention = std::chrono::minutes(30)) {
  redis_url u;
  u.port = port;
  return make_redis_store(u, retention);
}

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

TEST(RedisStore, StoresAndLoadsTurnsWithChecksAndExpiry) {
  const int port = fixture_port();
  auto s = store(port);
  const std::string id = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(id), d); }).ok());
  EXPECT_EQ(wait([&](auto d) { s->create(meta(id), d); }).code(), errc::invalid_argument);  // exists
  for (uint64_t seq = 1; seq <= 3; ++seq)
    ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, {seq, "u" + std::to_string(seq), "a\xC3\xA9", 5, 7, 42}, d); }).ok());
  const status gap = wait([&](auto d) { s->append(id, 1, {5, "x", "y", 0, 0, 0}, d); });
  EXPECT_EQ(gap.code(), errc::invalid_argument);
  EXPECT_NE(gap.message().find("seq 5 is not the next seq 4"), std::string::npos) << gap.message();
  const status dup = wait([&](auto d) { s->append(id, 1, {3, "x", "y", 0, 0, 0}, d); });
  EXPECT_EQ(dup.code(), errc::invalid_argument);  // a committed seq is never written twice
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 2, {4, "u4", "a4", 0, 0, 0}, d); }).ok());  // a newer owner
  const status stale = wait([&](auto d) { s->append(id, 1, {5, "x", "y", 0, 0, 0}, d); });
  EXPECT_NE(stale.message().find("stale owner epoch 1 < 2"), std::string::npos) << stale.message();
  auto snap = load(*s, id);
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  ASSERT_EQ(snap->turns.size(), 4u);
  EXPECT_EQ(snap->turns[1].user, "u2");
  EXPECT_EQ(snap->turns[0].assistant, "a\xC3\xA9");
  EXPECT_EQ(snap->meta.epoch, 2u);
  EXPECT_EQ(snap->meta.token_hash, sha256_hex("token"));
  EXPECT_EQ(snap->meta.model, "tiny:119104");
  // Sliding expiry on both keys; hash-tagged key names.
  EXPECT_GT(std::stol(redis_cli(port, "pttl 'brigade:{" + id + "}:turns'")), 1000 * 60 * 29);
  EXPECT_GT(std::stol(redis_cli(port, "pttl 'brigade:{" + id + "}:meta'")), 1000 * 60 * 29);
  ASSERT_TRUE(wait([&](auto d) { s->remove(id, d); }).ok());
  EXPECT_EQ(load(*s, id).error().code(), errc::not_found);
  EXPECT_EQ(wait([&](auto d) { s->append(id, 1, {1, "x", "y", 0, 0, 0}, d); }).code(), errc::not_found);
}

TEST(RedisStore, DamagedRecordsFailOnlyThatSessionWithAClearError) {
  const int port = fixture_port();
  auto s = store(port);
  const std::string bad = random_hex(16), good = random_hex(16), old = random_hex(16);
  for (const auto& id : {bad, good, old}) ASSERT_TRUE(wait([&](auto d) { s->create(meta(id), d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { s->append(good, 1, {1, "hi", "hello", 0, 0, 0}, d); }).ok());
  redis_cli(port, "rpush 'brigade:{" + bad + "}:turns' 'certainly not msgpack'");
  redis_cli(port, "hset 'brigade:{" + old + "}:meta' v 99");
  auto b = load(*s, bad);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), errc::malformed);
  EXPECT_NE(b.error().message().find("session " + bad + ": stored turn 1 cannot be read"), std::string::npos)
      << b.error().message();
  auto o = load(*s, old);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message().find("schema version '99'"), std::string::npos) << o.error().message();
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
  const status down = wait([&](auto d) { s->create(meta(id), d); });
  EXPECT_EQ(down.code(), errc::io);
  EXPECT_NE(down.message().find("redis 127.0.0.1:" + std::to_string(port)), std::string::npos) << down.message();
  EXPECT_NE(down.message().find("refused"), std::string::npos) << down.message();
  ASSERT_EQ(std::system(start.c_str()), 0);
  status up;
  for (int i = 0; i < 100 && !(up = wait([&](auto d) { s->create(meta(id), d); })).ok(); ++i) usleep(50000);
  ASSERT_TRUE(up.ok()) << up.message();
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, {1, "a", "b", 0, 0, 0}, d); }).ok());
  redis_cli(port, "shutdown");  // AOF with appendfsync always: the acknowledged turn is on disk
  EXPECT_EQ(wait([&](auto d) { s->append(id, 1, {2, "c", "d", 0, 0, 0}, d); }).code(), errc::io);
  ASSERT_EQ(std::system(start.c_str()), 0);
  status again;
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
