// The server-side dependencies are found, link and work together: a CAF
// actor answers a request, msgpack round-trips a record, prometheus-cpp
// serializes a counter, hiredis reports a refused connection as an error.
// Later issues test the real components; this pins the build.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <caf/all.hpp>

#include <msgpack.hpp>

#include "runtime/build_info.hpp"

namespace {

TEST(Dependencies, CafActorAnswersARequest) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto doubler = sys.spawn([]() -> caf::behavior { return {[](int x) { return 2 * x; }}; });
  caf::scoped_actor self{sys};
  int answer = 0;
  self->request(doubler, std::chrono::seconds(5), 21)
      .receive([&](int r) { answer = r; }, [&](caf::error&) { answer = -1; });
  EXPECT_EQ(answer, 42);
  self->send_exit(doubler, caf::exit_reason::user_shutdown);
}

TEST(Dependencies, MsgpackRoundTripsATurnLikeRecord) {
  std::tuple<int, uint64_t, std::string> turn{1, 7, "héllo"};
  msgpack::sbuffer buf;
  msgpack::pack(buf, turn);
  auto handle = msgpack::unpack(buf.data(), buf.size());
  auto back = handle.get().as<std::tuple<int, uint64_t, std::string>>();
  EXPECT_EQ(back, turn);
}

TEST(Dependencies, PrometheusSerializesACounter) {
  prometheus::Registry reg;
  auto& fam = prometheus::BuildCounter().Name("brigade_test_total").Help("test").Register(reg);
  fam.Add({}).Increment(3);
  const std::string text = prometheus::TextSerializer{}.Serialize(reg.Collect());
  EXPECT_NE(text.find("brigade_test_total 3"), std::string::npos) << text;
}

TEST(Dependencies, HiredisReportsARefusedConnection) {
  // Port 1 on loopback is never a Redis server.
  redisContext* c = redisConnect("127.0.0.1", 1);
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->err, 0);
  redisFree(c);
}

TEST(Dependencies, VersionsAreReported) {
  const std::string v = brigade::runtime::dependency_versions();
  EXPECT_NE(v.find("CAF 0.17"), std::string::npos) << v;
  EXPECT_NE(v.find("hiredis"), std::string::npos);
}

}  // namespace
