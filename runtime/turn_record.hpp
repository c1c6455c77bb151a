// One committed turn: what the store keeps (runtime/redis_records.hpp
// encodes it as msgpack), what `b_history` returns over the wire (its CAF
// inspect and registered name, "brigade::turn_record", are in
// runtime/protocol.hpp) and what a conversation holds. Plain data, no CAF.
#pragma once

#include <cstdint>
#include <string>

namespace brigade {

struct turn_record {
  uint64_t seq = 0;               // 1, 2, ... in the session
  std::string user;               // the user's message
  std::string assistant;          // the reply as sent (cut before a stop string)
  uint32_t prompt_tokens = 0;     // tokens the engine prefilled for this turn (after KV reuse)
  uint32_t generated_tokens = 0;  // tokens the engine generated
  int64_t committed_at_ms = 0;    // wall clock when the session committed it
};

}  // namespace brigade
