// The port of the redis-server that the CTest fixture `redis` started
// (tests/redis/redis_fixture.py writes it to BRIGADE_REDIS_FIXTURE_DIR/port).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace brigade::test {

inline int redis_fixture_port() {
  std::ifstream in(std::string(BRIGADE_REDIS_FIXTURE_DIR) + "/port");
  int port = 0;
  in >> port;
  EXPECT_GT(port, 0) << "no redis-server from the fixture (ctest -L redis runs it)";
  return port;
}

}  // namespace brigade::test
