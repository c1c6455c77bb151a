// The session store's contract (runtime/store.hpp), checked the same way
// against every store: seq and epoch checks, ownership leases (taken, renewed,
// expired, released, taken back at once by the same node name), fencing of a
// stale owner. Included by the memory store's test (label unit) and the
// Redis store's test (label redis, against a real redis-server).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <memory>
#include <thread>

#include "runtime/clock.hpp"
#include "runtime/hashing.hpp"
#include "runtime/store.hpp"

namespace brigade::runtime::contract {

using factory = std::function<std::unique_ptr<session_store>(const store_options&)>;

inline store_status wait(const std::function<void(session_store::done_fn)>& call) {
  std::promise<store_status> p;
  call([&](store_status s) { p.set_value(s); });
  return p.get_future().get();
}

inline store_result<session_snapshot> load(session_store& s, const std::string& id) {
  std::promise<store_result<session_snapshot>> p;
  s.load(id, [&](store_result<session_snapshot> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

inline store_result<session_snapshot> acquire(session_store& s, const std::string& id, const std::string& node) {
  std::promise<store_result<session_snapshot>> p;
  s.acquire(id, node, [&](store_result<session_snapshot> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

inline session_meta meta(const std::string& id, const std::string& owner = "node-a") {
  session_meta m;
  m.id = id;
  m.token_hash = sha256_hex("token");
  m.model = "tiny:119104";
  m.owner = owner;
  m.created_ms = now_ms();
  return m;
}

inline turn_record turn(uint64_t seq) { return {seq, "u" + std::to_string(seq), "a\xC3\xA9", 5, 7, 42}; }

inline void turns_and_checks(const factory& make) {
  auto s = make({});
  const std::string id = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(id), d); }).ok());
  EXPECT_EQ(wait([&](auto d) { s->create(meta(id), d); }).code(), store_errc::invalid_argument);  // exists
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, turn(seq), d); }).ok());
  const store_status gap = wait([&](auto d) { s->append(id, 1, turn(5), d); });
  EXPECT_EQ(gap.code(), store_errc::invalid_argument);
  EXPECT_NE(gap.message().find("seq 5 is not the next seq 4"), std::string::npos) << gap.message();
  const store_status dup = wait([&](auto d) { s->append(id, 1, turn(3), d); });
  EXPECT_EQ(dup.code(), store_errc::invalid_argument);  // a committed seq is never written twice
  auto snap = load(*s, id);
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  ASSERT_EQ(snap->turns.size(), 3u);
  EXPECT_EQ(snap->turns[1].user, "u2");
  EXPECT_EQ(snap->turns[0].assistant, "a\xC3\xA9");
  EXPECT_EQ(snap->turns[2].generated_tokens, 7u);
  EXPECT_EQ(snap->meta.epoch, 1u);
  EXPECT_EQ(snap->meta.owner, "node-a");
  EXPECT_EQ(snap->meta.token_hash, sha256_hex("token"));
  EXPECT_EQ(snap->meta.model, "tiny:119104");
  ASSERT_TRUE(wait([&](auto d) { s->remove(id, d); }).ok());
  EXPECT_EQ(load(*s, id).error().code(), store_errc::not_found);
  EXPECT_EQ(wait([&](auto d) { s->append(id, 1, turn(1), d); }).code(), store_errc::not_found);
  EXPECT_EQ(acquire(*s, id, "node-a").error().code(), store_errc::not_found);
}

/// A session's system prompt and the turns' idempotency keys (the HTTP
/// API's) survive the store; turns without a key stay as they were.
inline void keeps_system_prompts_and_idempotency_keys(const factory& make) {
  auto s = make({});
  const std::string id = random_hex(16);
  session_meta m = meta(id);
  m.system = "You are a chef. \xF0\x9F\x8D\xB2";
  ASSERT_TRUE(wait([&](auto d) { s->create(m, d); }).ok());
  turn_record keyed = turn(1);
  keyed.key = "order-17";
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, keyed, d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, turn(2), d); }).ok());
  auto a = acquire(*s, id, "node-a");  // the same owner takes it back: epoch 2, everything kept
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(a->meta.system, m.system);
  ASSERT_EQ(a->turns.size(), 2u);
  EXPECT_EQ(a->turns[0].key, "order-17");
  EXPECT_EQ(a->turns[0].user, "u1");
  EXPECT_EQ(a->turns[1].key, "");
  const std::string plain = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(plain), d); }).ok());
  auto p = load(*s, plain);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->meta.system, "");
}

inline void leases_fence_stale_owners(const factory& make) {
  store_options o;
  o.lease = std::chrono::seconds(30);
  auto s = make(o);
  const std::string id = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(id, "node-a"), d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, turn(1), d); }).ok());
  // Another node must wait for the lease...
  auto b = acquire(*s, id, "node-b");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), store_errc::conflict);
  EXPECT_NE(b.error().message().find("owned by node node-a for"), std::string::npos) << b.error().message();
  // ...but node-a, restarted under the same name, takes it back at once with
  // a higher epoch, and the old process (epoch 1) is fenced off.
  auto a2 = acquire(*s, id, "node-a");
  ASSERT_TRUE(a2.ok()) << a2.error().message();
  EXPECT_EQ(a2->meta.epoch, 2u);
  ASSERT_EQ(a2->turns.size(), 1u);
  const store_status stale = wait([&](auto d) { s->append(id, 1, turn(2), d); });
  EXPECT_EQ(stale.code(), store_errc::conflict);
  EXPECT_NE(stale.message().find("ownership moved to node node-a (epoch 1 is not the current 2)"), std::string::npos)
      << stale.message();
  EXPECT_EQ(wait([&](auto d) { s->renew(id, 1, d); }).code(), store_errc::conflict);
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 2, turn(2), d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { s->renew(id, 2, d); }).ok());
  // A stale release changes nothing; the owner's release frees it at once.
  ASSERT_TRUE(wait([&](auto d) { s->release(id, 1, d); }).ok());
  EXPECT_EQ(acquire(*s, id, "node-b").error().code(), store_errc::conflict);
  ASSERT_TRUE(wait([&](auto d) { s->release(id, 2, d); }).ok());
  auto b3 = acquire(*s, id, "node-b");
  ASSERT_TRUE(b3.ok()) << b3.error().message();
  EXPECT_EQ(b3->meta.epoch, 3u);
  EXPECT_EQ(b3->meta.owner, "node-b");
  EXPECT_EQ(b3->turns.size(), 2u);
  EXPECT_EQ(wait([&](auto d) { s->append(id, 2, turn(3), d); }).code(), store_errc::conflict);  // node-a is out
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 3, turn(3), d); }).ok());
  EXPECT_EQ(load(*s, id)->turns.size(), 3u);
}

inline void leases_expire_unless_renewed(const factory& make) {
  store_options o;
  o.lease = std::chrono::milliseconds(400);
  auto s = make(o);
  const std::string id = random_hex(16);
  ASSERT_TRUE(wait([&](auto d) { s->create(meta(id, "node-a"), d); }).ok());
  for (int i = 0; i < 4; ++i) {  // renewed every 150 ms for 600 ms: still node-a's
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    ASSERT_TRUE(wait([&](auto d) { s->renew(id, 1, d); }).ok());
  }
  EXPECT_EQ(acquire(*s, id, "node-b").error().code(), store_errc::conflict);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // node-a went silent
  auto b = acquire(*s, id, "node-b");
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(b->meta.epoch, 2u);
  EXPECT_EQ(wait([&](auto d) { s->renew(id, 1, d); }).code(), store_errc::conflict);
}

struct claim_result {
  store_result<session_snapshot> r;
  lease_holder holder;
};

inline claim_result claim(session_store& s, const std::string& id, const claimant& who) {
  std::promise<claim_result> p;
  s.acquire(id, who, [&](store_result<session_snapshot> r, lease_holder h) {
    p.set_value({std::move(r), std::move(h)});
  });
  return p.get_future().get();
}

/// Failover: a lease held by an incarnation the cluster declared dead is
/// taken at once; a live holder's is refused, naming the holder.
inline void dead_incarnations_lose_their_leases_at_once(const factory& make) {
  store_options o;
  o.lease = std::chrono::seconds(30);
  auto s = make(o);
  const std::string id = random_hex(16);
  session_meta m = meta(id, "node-a");
  m.owner_incarnation = "inc-a1";
  ASSERT_TRUE(wait([&](auto d) { s->create(m, d); }).ok());
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 1, turn(1), d); }).ok());
  EXPECT_EQ(load(*s, id)->meta.owner_incarnation, "inc-a1");
  // node-a is alive (another incarnation is dead): refused, with the holder.
  auto live = claim(*s, id, {"node-b", "inc-b1", {"inc-x"}});
  ASSERT_FALSE(live.r.ok());
  EXPECT_EQ(live.r.error().code(), store_errc::conflict);
  EXPECT_EQ(live.holder.node, "node-a");
  EXPECT_EQ(live.holder.incarnation, "inc-a1");
  EXPECT_GT(live.holder.remaining_ms, 20000);
  // Declared dead: taken now, the epoch raised, node-a fenced off.
  auto b = claim(*s, id, {"node-b", "inc-b1", {"inc-x", "inc-a1"}});
  ASSERT_TRUE(b.r.ok()) << b.r.error().message();
  EXPECT_TRUE(b.r->failover);
  EXPECT_EQ(b.r->meta.epoch, 2u);
  EXPECT_EQ(b.r->meta.owner, "node-b");
  EXPECT_EQ(b.r->meta.owner_incarnation, "inc-b1");
  EXPECT_TRUE(b.holder.node.empty());
  EXPECT_EQ(wait([&](auto d) { s->append(id, 1, turn(2), d); }).code(), store_errc::conflict);
  ASSERT_TRUE(wait([&](auto d) { s->append(id, 2, turn(2), d); }).ok());
  // A stale report naming node-b's old incarnation does not move it again.
  auto c = claim(*s, id, {"node-c", "inc-c1", {"inc-a1"}});
  ASSERT_FALSE(c.r.ok());
  EXPECT_EQ(c.holder.incarnation, "inc-b1");
  // The same name restarted (a new incarnation) takes it back without a death.
  auto b2 = claim(*s, id, {"node-b", "inc-b2", {}});
  ASSERT_TRUE(b2.r.ok()) << b2.r.error().message();
  EXPECT_FALSE(b2.r->failover);
  EXPECT_EQ(b2.r->meta.epoch, 3u);
  EXPECT_EQ(load(*s, id)->meta.owner_incarnation, "inc-b2");
}

inline store_result<lease_holder> locate(session_store& s, const std::string& id, std::vector<std::string> dead = {}) {
  std::promise<store_result<lease_holder>> p;
  s.locate(id, dead, [&](store_result<lease_holder> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

/// Placement asks who holds a lease without touching it: the live holder,
/// nobody once it is released or its holder is dead, not_found for no session.
inline void locate_names_the_live_holder_only(const factory& make) {
  store_options o;
  o.lease = std::chrono::seconds(30);
  auto s = make(o);
  EXPECT_EQ(locate(*s, random_hex(16)).error().code(), store_errc::not_found);
  const std::string id = random_hex(16);
  session_meta m = meta(id, "node-a");
  m.owner_incarnation = "inc-a1";
  ASSERT_TRUE(wait([&](auto d) { s->create(m, d); }).ok());
  auto h = locate(*s, id, {"inc-x"});
  ASSERT_TRUE(h.ok()) << h.error().message();
  EXPECT_EQ(h->node, "node-a");
  EXPECT_EQ(h->incarnation, "inc-a1");
  EXPECT_GT(h->remaining_ms, 20000);
  auto dead = locate(*s, id, {"inc-a1"});
  ASSERT_TRUE(dead.ok());
  EXPECT_TRUE(dead->node.empty()) << "a dead incarnation's lease is void";
  EXPECT_EQ(load(*s, id)->meta.epoch, 1u) << "locate does not touch the lease";
  ASSERT_TRUE(wait([&](auto d) { s->release(id, 1, d); }).ok());
  auto freed = locate(*s, id);
  ASSERT_TRUE(freed.ok());
  EXPECT_TRUE(freed->node.empty()) << "released";
}

}  // namespace brigade::runtime::contract

#define BRIGADE_STORE_CONTRACT_TESTS(Suite, make)                                                        \
  TEST(Suite, TurnsAndChecks) { ::brigade::runtime::contract::turns_and_checks(make); }                  \
  TEST(Suite, KeepsSystemPromptsAndIdempotencyKeys) {                                                    \
    ::brigade::runtime::contract::keeps_system_prompts_and_idempotency_keys(make);                       \
  }                                                                                                      \
  TEST(Suite, LeasesFenceStaleOwners) { ::brigade::runtime::contract::leases_fence_stale_owners(make); } \
  TEST(Suite, LeasesExpireUnlessRenewed) { ::brigade::runtime::contract::leases_expire_unless_renewed(make); } \
  TEST(Suite, LocateNamesTheLiveHolderOnly) {                                                            \
    ::brigade::runtime::contract::locate_names_the_live_holder_only(make);                               \
  }                                                                                                      \
  TEST(Suite, DeadIncarnationsLoseTheirLeasesAtOnce) {                                                   \
    ::brigade::runtime::contract::dead_incarnations_lose_their_leases_at_once(make);                     \
  }
