// The memory store against the store contract (tests/runtime/store_contract.hpp).
#include "tests/runtime/store_contract.hpp"

namespace brigade::runtime {
namespace {

std::unique_ptr<session_store> make_store(const store_options& o) { return make_memory_store(o); }

BRIGADE_STORE_CONTRACT_TESTS(MemoryStore, make_store)

TEST(MemoryStore, ExpiresSessionsUntouchedForTheRetention) {
  store_options o;
  o.retention = std::chrono::milliseconds(200);
  auto s = make_memory_store(o);
  const std::string id = random_hex(16);
  ASSERT_TRUE(contract::wait([&](auto d) { s->create(contract::meta(id), d); }).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  ASSERT_TRUE(contract::wait([&](auto d) { s->append(id, 1, contract::turn(1), d); }).ok());  // slides
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  EXPECT_TRUE(contract::load(*s, id).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_EQ(contract::load(*s, id).error().code(), errc::not_found);
}

}  // namespace
}  // namespace brigade::runtime
