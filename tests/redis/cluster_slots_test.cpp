// Every script call and transaction of the session store and of the
// membership touches keys of one hash slot: run against a real redis-server
// in cluster mode (one node holding all 16384 slots), which refuses any
// command or script whose keys span two slots (CROSSSLOT) and any script
// that touches a key of another slot. Label redis; starts its own server.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "runtime/hashing.hpp"
#include "runtime/membership.hpp"
#include "runtime/redis_store.hpp"
#include "tests/runtime/store_contract.hpp"

namespace brigade::runtime {
namespace {

std::string run(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen((cmd + " 2>&1").c_str(), "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  return out;
}

bool bindable(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

/// A free port whose cluster bus port (port + 10000, Redis' rule) is free too.
int free_port() {
  for (int i = 0; i < 1000; ++i) {
    const int port = 20000 + static_cast<int>((static_cast<unsigned>(getpid()) * 7919u + i * 104729u) % 15000u);
    if (bindable(port) && bindable(port + 10000)) return port;
  }
  return 0;
}

/// A cluster-mode redis-server for this test only.
class cluster_redis {
 public:
  cluster_redis() : port_(free_port()), dir_("/tmp/brigade-slots-" + std::to_string(getpid())) {
    run("rm -rf " + dir_ + " && mkdir -p " + dir_);
    const std::string p = std::to_string(port_);
    run("redis-server --port " + p + " --bind 127.0.0.1 --daemonize yes --save '' --appendonly no --dir " + dir_ +
        " --cluster-enabled yes --cluster-config-file " + dir_ + "/nodes.conf --logfile " + dir_ + "/log");
    for (int i = 0; i < 600 && run("redis-cli -p " + p + " ping").find("PONG") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    run("redis-cli -p " + p + " cluster addslotsrange 0 16383");
    for (int i = 0; i < 600 && run("redis-cli -p " + p + " cluster info").find("cluster_state:ok") == std::string::npos;
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ~cluster_redis() {
    run("redis-cli -p " + std::to_string(port_) + " shutdown nosave");
    run("rm -rf " + dir_);
  }
  int port() const { return port_; }
  bool ready() const {
    return run("redis-cli -p " + std::to_string(port_) + " cluster info").find("cluster_state:ok") !=
           std::string::npos;
  }

 private:
  int port_;
  std::string dir_;
};

cluster_redis& server() {
  static cluster_redis s;
  return s;
}

std::unique_ptr<session_store> cluster_store(const store_options& o) {
  redis_url u;
  u.port = server().port();
  store_options with_compaction = o;
  with_compaction.compact_min = 2;  // compaction's scripts and reads run too
  return make_redis_store(u, with_compaction);
}

TEST(ClusterSlots, TheServerRefusesCrossSlotScripts) {
  ASSERT_TRUE(server().ready()) << "no cluster-mode redis-server";
  // The check is real: a script over two tags fails here.
  const std::string out = run("redis-cli -p " + std::to_string(server().port()) +
                              " eval \"return redis.call('mget', KEYS[1], KEYS[2])\" 2 '{a}x' '{b}y'");
  EXPECT_NE(out.find("CROSSSLOT"), std::string::npos) << out;
}

// The whole store contract (create, append, acquire with takeover, renew,
// release, load, compaction, remove) on the cluster-mode server.
TEST(ClusterSlots, StoreContract) {
  ASSERT_TRUE(server().ready());
  contract::turns_and_checks(cluster_store);
  contract::leases_fence_stale_owners(cluster_store);
  contract::dead_incarnations_lose_their_leases_at_once(cluster_store);
  auto s = cluster_store({});
  const std::string id = random_hex(16);
  ASSERT_TRUE(contract::wait([&](auto d) { s->create(contract::meta(id), d); }).ok());
  for (uint64_t seq = 1; seq <= 6; ++seq)
    ASSERT_TRUE(contract::wait([&](auto d) { s->append(id, 1, contract::turn(seq), d); }).ok());
  ASSERT_TRUE(contract::wait([&](auto d) { s->compact(id, d); }).ok());
  auto snap = contract::load(*s, id);
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  EXPECT_EQ(snap->turns.size(), 6u);
}

template <class T>
T wait_for(const std::function<void(std::function<void(T)>)>& call) {
  std::promise<T> p;
  call([&](T r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

TEST(ClusterSlots, Membership) {
  ASSERT_TRUE(server().ready());
  redis_url u;
  u.port = server().port();
  membership t(u, {});
  auto make = [](const std::string& name, const std::string& inc) {
    member m;
    m.name = name;
    m.address = "127.0.0.1:1";
    m.incarnation = inc;
    m.state = "active";
    m.model = "tiny";
    m.version = 1;
    return m;
  };
  member a = make("a", random_hex(8)), b = make("b", random_hex(8)), c = make("c", random_hex(8));
  for (const member& m : {a, b, c}) {
    std::promise<store_status> p;
    t.join(m, "", [&](store_status s, member) { p.set_value(s); });
    ASSERT_TRUE(p.get_future().get().ok());
    auto r = wait_for<store_result<member_table>>([&](auto done) { t.heartbeat(m, done); });
    ASSERT_TRUE(r.ok()) << r.error().message();
  }
  for (const member& by : {a, b}) {
    auto r = wait_for<store_result<membership::verdict>>([&](auto done) { t.report(by, c.name, c.incarnation, done); });
    ASSERT_TRUE(r.ok()) << r.error().message();
  }
  auto table = wait_for<store_result<member_table>>([&](auto done) { t.table(done); });
  ASSERT_TRUE(table.ok()) << table.error().message();
  ASSERT_NE(table->find("c"), nullptr);
  EXPECT_EQ(table->find("c")->state, "dead");
  std::promise<store_status> left;
  t.leave(a, [&](store_status s) { left.set_value(s); });
  EXPECT_TRUE(left.get_future().get().ok());
}

}  // namespace
}  // namespace brigade::runtime
