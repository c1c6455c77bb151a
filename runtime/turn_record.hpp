// One committed turn: what the store keeps (runtime/redis_records.hpp
// encodes it as msgpack), what `b_history` returns over the wire and what a
// conversation holds; and a turn's statistics, which `turn_result` carries.
// Plain data, no CAF: their inspect functions and registered names
// ("brigade::turn_record", "brigade::turn_stats") are in runtime/protocol.hpp.
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
  // The request's Idempotency-Key (HTTP API), "" for none. Stored (turn
  // record schema 2, written only when set), not sent over BASP: history
  // over the wire keeps the fields above (runtime/protocol.hpp).
  std::string key;
};

/// What a turn cost, as its result reports it.
struct turn_stats {
  uint32_t prompt_tokens = 0;
  uint32_t generated_tokens = 0;
  double ttft_seconds = 0;     // request to first token
  double total_seconds = 0;    // request to commit
  double mean_batch_size = 0;  // mean engine batch size over this turn's steps
  bool replayed = false;       // true when the seq was already committed (no model run)
  std::string stop_reason;     // eos, max_tokens, stop_string
};

}  // namespace brigade
