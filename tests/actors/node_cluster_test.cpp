// actors/node_cluster.hpp's address parsing: what the cluster actor and the
// join's who-is-at dial (IPv4, names, and bracketed IPv6 as advertised).
#include "actors/node_cluster.hpp"

#include <gtest/gtest.h>

using brigade::actors::split_address;

TEST(SplitAddress, HostsPortsAndBracketedIpv6) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(split_address("10.0.0.7:7420", host, port));
  EXPECT_EQ(host, "10.0.0.7");
  EXPECT_EQ(port, 7420);
  ASSERT_TRUE(split_address("brigade-0.brigade-peers:7421", host, port));
  EXPECT_EQ(host, "brigade-0.brigade-peers");
  ASSERT_TRUE(split_address("[fd00::12]:7420", host, port));
  EXPECT_EQ(host, "fd00::12");  // CAF connects to the bare address
  EXPECT_EQ(port, 7420);
  for (const char* bad : {"nohost", ":7420", "h:0", "h:65536", "h:74x", "h:"})
    EXPECT_FALSE(split_address(bad, host, port)) << bad;
}
