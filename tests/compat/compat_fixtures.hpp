// The turns and sessions of the Redis golden records (tests/compat/golden/
// redis/): redis_capture wrote them with the build before the redesign of
// issue 11, redis_compat_test expects exactly these values back.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/store.hpp"

namespace brigade::compat {

inline const std::string compacted_id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
inline const std::string plain_id = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
inline const std::string model_id = "stories260K:292352:0f1e2d3c4b5a69788796a5b4c3d2e1f0";
inline constexpr int64_t created_ms = 1764600000000;

inline std::string token_of(const std::string& id) { return id + id; }

inline turn_record compat_turn(uint64_t seq) {
  turn_record t;
  t.seq = seq;
  t.user = "Order " + std::to_string(seq) + ": soup \xc3\xa0 la carte \xf0\x9f\x8d\xb2";
  t.assistant = std::string(seq * 7, 'x') + " \xe2\x80\x94 served";
  t.prompt_tokens = static_cast<uint32_t>(10 * seq);
  t.generated_tokens = static_cast<uint32_t>(seq + 2);
  t.committed_at_ms = created_ms + static_cast<int64_t>(seq) * 1000;
  return t;
}

}  // namespace brigade::compat
