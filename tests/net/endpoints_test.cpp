// The client's node list (label unit): `--host` entries, and names that
// resolve to several addresses becoming several nodes to fail over between.
#include <gtest/gtest.h>

#include "net/client.hpp"

namespace brigade::net {
namespace {

TEST(Endpoints, ParsesHostListsWithAndWithoutPorts) {
  std::vector<endpoint> eps;
  std::string err;
  ASSERT_TRUE(parse_endpoints("a:1,b,10.0.0.3:7421", 7420, eps, err)) << err;
  ASSERT_EQ(eps.size(), 3u);
  EXPECT_EQ(eps[0].host, "a");
  EXPECT_EQ(eps[0].port, 1);
  EXPECT_EQ(eps[1].host, "b");
  EXPECT_EQ(eps[1].port, 7420);
  EXPECT_EQ(eps[2].port, 7421);
  EXPECT_FALSE(parse_endpoints("a,,b", 7420, eps, err));
  EXPECT_NE(err.find("empty entry"), std::string::npos) << err;
  EXPECT_FALSE(parse_endpoints("a:99999", 7420, eps, err));
  EXPECT_NE(err.find("port from 1 to 65535"), std::string::npos) << err;
}

TEST(Endpoints, ANameWithSeveralAddressesIsSeveralNodes) {
  resolver fake = [](const std::string& host) -> std::vector<std::string> {
    if (host == "brigade.svc") return {"10.0.0.1", "10.0.0.2", "10.0.0.1"};
    if (host == "one") return {"10.0.0.9"};
    return {};
  };
  auto out = expand_endpoints({{"brigade.svc", 7420}, {"one", 7421}, {"nowhere", 7422}, {"10.0.0.2", 7420}}, fake);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].host, "10.0.0.1");
  EXPECT_EQ(out[1].host, "10.0.0.2");
  EXPECT_EQ(out[1].port, 7420);
  EXPECT_EQ(out[2].host, "one");  // one address: the name stays (the connect resolves it)
  EXPECT_EQ(out[3].host, "nowhere");
  // 10.0.0.2:7420 was already in the list.
}

TEST(Endpoints, TheSystemResolverAnswersForLoopback) {
  const auto addrs = resolve_host("127.0.0.1");
  ASSERT_EQ(addrs.size(), 1u);
  EXPECT_EQ(addrs[0], "127.0.0.1");
  EXPECT_TRUE(resolve_host("no-such-host.invalid").empty());
}

}  // namespace
}  // namespace brigade::net
