// Weighted rendezvous placement (runtime/placement.hpp): balance, weights,
// stability when nodes join or leave.
#include <gtest/gtest.h>

#include <map>

#include "runtime/hashing.hpp"
#include "runtime/placement.hpp"

namespace brigade::runtime {
namespace {

std::vector<std::string> ids(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(random_hex(16));
  return out;
}

std::map<std::string, int> spread(const std::vector<placement_candidate>& nodes, const std::vector<std::string>& keys) {
  std::map<std::string, int> n;
  for (const auto& k : keys) ++n[rendezvous(nodes, k)];
  return n;
}

TEST(Placement, EqualNodesShareAThousandSessionsWithinTheTarget) {
  const auto keys = ids(1000);
  auto n = spread({{"a", 1}, {"b", 1}, {"c", 1}}, keys);
  ASSERT_EQ(n.size(), 3u);
  int lo = 1000, hi = 0;
  for (auto& [node, c] : n) lo = std::min(lo, c), hi = std::max(hi, c);
  // Target: the busiest at most 1.3 x the least busy (binomial: about 1.1 typically).
  EXPECT_LE(hi, 1.3 * lo) << "a " << n["a"] << " b " << n["b"] << " c " << n["c"];
}

TEST(Placement, WeightsGiveProportionalShares) {
  const auto keys = ids(1000);
  auto n = spread({{"a", 1}, {"b", 1}, {"c", 2}}, keys);
  EXPECT_NEAR(n["c"], 500, 75) << "within 15% of half";
  EXPECT_NEAR(n["a"], 250, 60);
  auto z = spread({{"a", 1}, {"gateway-only", 0}}, keys);
  EXPECT_EQ(z["a"], 1000) << "capacity 0 takes no sessions";
  EXPECT_EQ(rendezvous({{"x", 0}}, "k"), "") << "nobody to place on";
  EXPECT_EQ(rendezvous({}, "k"), "");
}

TEST(Placement, AJoiningNodeTakesOnlyItsShareAndALeavingOneMovesOnlyItsOwn) {
  const auto keys = ids(2000);
  const std::vector<placement_candidate> three{{"a", 1}, {"b", 1}, {"c", 1}};
  auto four = three;
  four.push_back({"d", 1});
  int moved = 0, moved_elsewhere = 0;
  for (const auto& k : keys) {
    const std::string before = rendezvous(three, k), after = rendezvous(four, k);
    if (before != after) {
      ++moved;
      if (after != "d") ++moved_elsewhere;
    }
  }
  EXPECT_EQ(moved_elsewhere, 0) << "a join only moves sessions to the new node";
  EXPECT_NEAR(moved, 500, 90) << "about a quarter";
  const std::vector<placement_candidate> two{{"a", 1}, {"c", 1}};
  for (const auto& k : keys) {
    const std::string before = rendezvous(three, k);
    if (before != "b") {
      EXPECT_EQ(rendezvous(two, k), before) << "only b's sessions move when b leaves";
    }
  }
}

TEST(Placement, EveryNodeComputesTheSameChoiceWhateverTheOrder) {
  for (const auto& k : ids(200))
    EXPECT_EQ(rendezvous({{"a", 1}, {"b", 2}, {"c", 1}}, k), rendezvous({{"c", 1}, {"a", 1}, {"b", 2}}, k));
}

}  // namespace
}  // namespace brigade::runtime
