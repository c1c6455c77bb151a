// Sampling the next token from logits: greedy, temperature, top-k, top-p.
//
// The one random draw per token is sampling_bits(seed, position) from
// kernels/philox.hpp, and the probabilities are integer weights computed with
// kernels/det_math.hpp, so the same logits, parameters, seed and position give
// the same token on any backend, the CUDA one included (design.md, invariant
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

struct sampling_params {
  float temperature = 0.0f;  // <= 0: greedy
  int32_t top_k = 0;         // 0: no limit
  float top_p = 1.0f;        // 1: no limit; (0, 1]
  uint64_t seed = 0;
};

/// An error sentence when a parameter is out of range (temperature < 0 or not
/// finite, top_k < 0, top_p outside (0, 1]), else ok.
status validate(const sampling_params& p);

/// Picks a token from `logits` (n_vocab values). `position` is the position
/// the sampled token will occupy in its sequence. `scratch` is reused between
/// calls to avoid allocations.
int32_t sample_token(const float* logits, int32_t n_vocab, const sampling_params& p, uint32_t position,
                     std::vector<std::pair<float, int32_t>>& scratch);

/// The index of the largest value (the lowest index among equal maxima).
int32_t argmax(const float* v, int32_t n);

}  // namespace brigade
