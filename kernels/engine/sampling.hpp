// Sampling the next token from logits: greedy, temperature, top-k, top-p.
//
// The one random draw per token is sampling_bits(seed, position) from
// kernels/philox.hpp, and the probabilities are integer weights computed with
// kernels/det_math.hpp, so the same logits, parameters, seed and position give
// the same token on any backend, the CUDA one included (docs/design.md, invariant
// 6). Order of filters:
// temperature scales the logits, top-k keeps the k largest, top-p keeps the
// smallest prefix (by descending probability) whose mass reaches p; then one
// draw walks the renormalised cumulative distribution. Ties in logits are
// broken by the lower token id everywhere, greedy included.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/base/status.hpp"

namespace brigade {

/// How one turn samples: what the engine reads (temperature, top_k, top_p,
/// seed) and what the turn around it uses (seed_set, max_tokens, stop).
/// Clients send it over the wire as "brigade::sampling_spec" (its CAF
/// inspect is in runtime/protocol.hpp). The defaults here are greedy (the
/// `chat` command's are temperature 0.8, top-k 40, top-p 0.95: clients set
/// every field they mean).
struct sampling_params {
  float temperature = 0.0f;       // <= 0: greedy; at most 100
  int32_t top_k = 0;              // 0: no limit
  float top_p = 1.0f;             // 1: no limit; (0, 1]
  uint64_t seed = 0;              // the Philox key of the draws
  bool seed_set = false;          // false: the node picks the seed (the turn's id)
  int32_t max_tokens = 0;         // tokens to generate; 0: the server's cap
  std::vector<std::string> stop;  // the reply ends before the earliest of these (at most 8, 1-64 bytes of UTF-8)
};

/// The one check of sampling parameters (the gateway's for requests, the
/// engine's for each step): invalid_argument with a sentence naming the
/// parameter and its range, else ok.
status validate(const sampling_params& p);

/// Picks a token from `logits` (n_vocab values). `position` is the position
/// the sampled token will occupy in its sequence. `scratch` is reused between
/// calls to avoid allocations.
int32_t sample_token(const float* logits, int32_t n_vocab, const sampling_params& p, uint32_t position,
                     std::vector<std::pair<float, int32_t>>& scratch);

/// The index of the largest value (the lowest index among equal maxima).
int32_t argmax(const float* v, int32_t n);

}  // namespace brigade
