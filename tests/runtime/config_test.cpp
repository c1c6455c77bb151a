// Configuration: durations and sizes, precedence (flag > env > file >
// default), errors that name the source, and config/brigade.conf in step
// with the key table.
#include "runtime/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace brigade::runtime {
namespace {

TEST(Config, ParsesDurationsWithUnits) {
  EXPECT_EQ(parse_duration("2ms")->count(), 2000);
  EXPECT_EQ(parse_duration("500us")->count(), 500);
  EXPECT_EQ(parse_duration("1.5s")->count(), 1500000);
  EXPECT_EQ(parse_duration("30min")->count(), 1800000000);
  EXPECT_EQ(parse_duration("2h")->count(), 7200000000);
  EXPECT_EQ(parse_duration("0")->count(), 0);
  EXPECT_FALSE(parse_duration("2").ok());
  EXPECT_FALSE(parse_duration("2 parsecs").ok());
  EXPECT_FALSE(parse_duration("-1s").ok());
  EXPECT_NE(parse_duration("soon").error().message().find("use e.g."), std::string::npos);
  EXPECT_EQ(format_duration(*parse_duration("30min")), "30min");
  EXPECT_EQ(format_duration(*parse_duration("2ms")), "2ms");
  EXPECT_EQ(*parse_bytes("256MiB"), 256ll << 20);
  EXPECT_FALSE(parse_bytes("lots").ok());
}

std::string temp_file(const std::string& text) {
  const std::string path = ::testing::TempDir() + "brigade_conf_" + std::to_string(::getpid()) + ".conf";
  std::ofstream(path) << text;
  return path;
}

TEST(Config, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  const std::string file = temp_file("# comment\nbatch-window = 5ms\nmax-batch = 8\nport = 7000\nstore = \"memory\"\n");
  auto env = [](const std::string& k) -> const char* {
    if (k == "BRIGADE_MAX_BATCH") return "16";
    if (k == "BRIGADE_PORT") return "7100";
    return nullptr;
  };
  auto c = resolve_config(file, env, {{"port", "7200"}});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->port, 7200);                                  // flag
  EXPECT_EQ(c->max_batch, 16);                               // environment
  EXPECT_EQ(c->batch_window, std::chrono::milliseconds(5));  // file
  EXPECT_EQ(c->queue_limit, node_config{}.queue_limit);      // default
  std::remove(file.c_str());
}

TEST(Config, ErrorsNameTheSourceAndTheValue) {
  auto c = resolve_config("", nullptr, {{"batch-window", "soon"}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message().rfind("--batch-window: 'soon' is not a duration", 0), 0u) << c.error().message();
  auto env = [](const std::string& k) -> const char* { return k == "BRIGADE_MAX_BATCH" ? "lots" : nullptr; };
  auto e = resolve_config("", env, {});
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message().find("BRIGADE_MAX_BATCH: 'lots' is not an integer"), std::string::npos);
  auto p = resolve_config("", nullptr, {{"context-policy", "shrug"}});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("not one of drop-oldest, refuse"), std::string::npos);
  const std::string bad = temp_file("max-batch = 4\nno-such-key = 1\n");
  auto f = resolve_config(bad, nullptr, {});
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message().find(":2: unknown key 'no-such-key'"), std::string::npos) << f.error().message();
  std::remove(bad.c_str());
  EXPECT_EQ(env_name("batch-window"), "BRIGADE_BATCH_WINDOW");
}

TEST(Config, ShippedConfigFileListsEveryKeyWithItsDefault) {
  const std::string path = std::string(BRIGADE_SOURCE_DIR) + "/config/brigade.conf";
  auto file = read_config_file(path);
  ASSERT_TRUE(file.ok()) << file.error().message();
  for (const auto& k : config_keys()) EXPECT_TRUE(file->count(k.name)) << k.name << " is missing from " << path;
  auto c = resolve_config(path, nullptr, {});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(dump_config(*c), dump_config(node_config{}));
}

}  // namespace
}  // namespace brigade::runtime
