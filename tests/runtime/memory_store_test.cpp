// The memory store against the store contract (tests/runtime/store_contract.hpp).
#include <atomic>
#include <memory>

#include "runtime/hashing.hpp"
#include "tests/runtime/store_contract.hpp"

namespace brigade::runtime {
namespace {

std::unique_ptr<session_store> make_store(const store_options& o) { return make_memory_store(o); }

BRIGADE_STORE_CONTRACT_TESTS(MemoryStore, make_store)

TEST(MemoryStore, ExpiresSessionsUntouchedForTheRetention) {
  store_options o;
  o.retention = std::chrono::milliseconds(200);
  auto clock = std::make_shared<std::atomic<int64_t>>(1'000'000);
  auto s = make_memory_store(o, [clock] { return clock->load(); });
  const std::string id = random_hex(16);
  ASSERT_TRUE(contract::wait([&](auto d) { s->create(contract::meta(id), d); }).ok());
  *clock += 120;
  ASSERT_TRUE(contract::wait([&](auto d) { s->append(id, 1, contract::turn(1), d); }).ok());  // slides
  *clock += 199;
  EXPECT_TRUE(contract::load(*s, id).ok()) << "199 ms after the last write";
  *clock += 2;
  EXPECT_EQ(contract::load(*s, id).error().code(), store_errc::not_found) << "201 ms after the last write";
}

}  // namespace
}  // namespace brigade::runtime
