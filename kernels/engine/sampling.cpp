#include "kernels/engine/sampling.hpp"

#include "kernels/model/unicode.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/base/det_math.hpp"
#include "kernels/base/philox.hpp"

namespace brigade {

status validate(const sampling_params& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0 || p.temperature > 100)
    return {errc::invalid_argument, "temperature must be between 0 (greedy) and 100"};
  if (p.top_k < 0) return {errc::invalid_argument, "top-k must be 0 (no limit) or more"};
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return {errc::invalid_argument, "top-p must be in (0, 1]"};
  if (p.max_tokens < 0) return {errc::invalid_argument, "max-tokens must be 0 (server default) or more"};
  if (p.stop.size() > 8) return {errc::invalid_argument, "at most 8 stop strings"};
  for (const auto& x : p.stop)
    if (x.empty() || x.size() > 64 || !unicode::valid_utf8(x))
      return {errc::invalid_argument, "stop strings must be 1 to 64 bytes of UTF-8"};
  return {};
}

int32_t argmax(const float* v, int32_t n) {
  // Two passes that vectorise (the maximum, then its first index) instead
  // of one compare-and-branch per element: greedy decoding calls this on
  // every step for every sequence (32,000 logits each).
  float block_max[8];
  for (int j = 0; j < 8; ++j) block_max[j] = -INFINITY;
  int32_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) block_max[j] = v[i + j] > block_max[j] ? v[i + j] : block_max[j];
  float mx = block_max[0];
  for (int j = 1; j < 8; ++j) mx = block_max[j] > mx ? block_max[j] : mx;
  for (; i < n; ++i) mx = v[i] > mx ? v[i] : mx;
  for (int32_t k = 0; k < n; ++k)
    if (v[k] == mx) return k;
  return 0;  // all NaN
}

int32_t sample_token(const float* logits, int32_t n_vocab, const sampling_params& p, uint32_t position,
                     std::vector<std::pair<float, int32_t>>& cand) {
  if (p.temperature <= 0.0f || p.top_k == 1) return argmax(logits, n_vocab);
  const float inv_t = 1.0f / p.temperature;
  // A strict total order (higher logit, then lower id), so every backend
  // keeps the same candidates in the same order.
  auto higher = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t n;
  if (p.top_k > 0 && p.top_k < n_vocab) {
    // One pass with a k-element min-heap (its top is the weakest kept
    // candidate): most logits are rejected by one comparison.
    const size_t k = static_cast<size_t>(p.top_k);
    cand.clear();
    for (int32_t i = 0; i < n_vocab; ++i) {
      const std::pair<float, int32_t> c{logits[i] * inv_t, i};
      if (cand.size() < k) {
        cand.push_back(c);
        std::push_heap(cand.begin(), cand.end(), higher);
      } else if (higher(c, cand.front())) {
        std::pop_heap(cand.begin(), cand.end(), higher);
        cand.back() = c;
        std::push_heap(cand.begin(), cand.end(), higher);
      }
    }
    std::sort(cand.begin(), cand.end(), higher);
    n = k;
  } else {
    cand.resize(static_cast<size_t>(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) cand[static_cast<size_t>(i)] = {logits[i] * inv_t, i};
    std::sort(cand.begin(), cand.end(), higher);
    n = cand.size();
  }
  // Softmax over the kept candidates (sorted, so cand[0] is the maximum),
  // as integer weights (det_math.hpp): the CUDA backend sums the same
  // integers in another order and gets the same totals, so it picks the same
  // token from the same logits.
  const float max = cand[0].first;
  thread_local std::vector<uint64_t> w;
  w.resize(n);
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) total += w[i] = prob_fixed(det_expf(cand[i].first - max));
  if (p.top_p < 1.0f) {  // keep the fewest candidates whose mass reaches top_p
    const uint64_t need = mass_threshold(p.top_p, total);
    uint64_t acc = 0;
    for (size_t i = 0; i < n; ++i) {
      acc += w[i];
      if (acc >= need) {
        n = i + 1;
        total = acc;
        break;
      }
    }
  }
  const uint64_t u = draw_point(sampling_bits(p.seed, position), total);
  uint64_t acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += w[i];
    if (u < acc) return cand[i].second;
  }
  return cand[n - 1].second;
}

}  // namespace brigade
