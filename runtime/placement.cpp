#include "runtime/placement.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

namespace brigade::runtime {

namespace {

/// FNV-1a over node, a separator and key, then the splitmix64 finaliser so
/// that keys differing in one character give independent scores.
uint64_t hash_pair(std::string_view node, std::string_view key) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (char c : node) mix(static_cast<unsigned char>(c));
  mix(0);
  for (char c : key) mix(static_cast<unsigned char>(c));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

}  // namespace

double rendezvous_score(std::string_view node, std::string_view key, double weight) {
  if (!(weight > 0)) return -std::numeric_limits<double>::infinity();
  // The top 53 bits as a double strictly inside (0, 1).
  const double u = (static_cast<double>(hash_pair(node, key) >> 11) + 0.5) / 9007199254740992.0;
  return -weight / std::log(u);
}

std::string rendezvous(const std::vector<placement_candidate>& nodes, std::string_view key) {
  const placement_candidate* best = nullptr;
  double best_score = 0;
  for (const auto& n : nodes) {
    if (!(n.weight > 0)) continue;
    const double s = rendezvous_score(n.node, key, n.weight);
    if (!best || s > best_score || (s == best_score && n.node < best->node)) {
      best = &n;
      best_score = s;
    }
  }
  return best ? best->node : std::string{};
}

}  // namespace brigade::runtime
