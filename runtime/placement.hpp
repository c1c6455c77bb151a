// Placement (docs/cluster.md): where a session with no live owner goes.
// Weighted rendezvous hashing (highest random weight): every node scores
// `-weight / ln(u)`, u a hash of (node, session) mapped into (0, 1), and the
// highest score wins. Each node then receives a share of the sessions in
// proportion to its weight, the choice needs no coordination (every node
// that sees the same candidates picks the same node), and a node that
// joins or leaves moves only the sessions that it wins or held.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace brigade::runtime {

struct placement_candidate {
  std::string node;
  double weight = 1;  // --capacity; 0 or less: never chosen
};

/// The candidate that `key` (a session id) is placed on; "" when none has
/// a weight above 0. Ties (practically impossible) go to the smaller name.
std::string rendezvous(const std::vector<placement_candidate>& nodes, std::string_view key);

/// The score of one node for one key (exposed for tests).
double rendezvous_score(std::string_view node, std::string_view key, double weight);

}  // namespace brigade::runtime
