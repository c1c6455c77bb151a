// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
// 3", SC'11): a counter-based generator. The same (key, counter) gives the
// same four 32-bit words on any machine, thread or device, which is what
// makes sampling reproducible across the CPU and CUDA backends (docs/design.md,
// invariant 6) and synthetic weights identical for any thread count.
// Header-only; BRIGADE_HD marks functions callable from CUDA device code.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define BRIGADE_HD __host__ __device__
#else
#define BRIGADE_HD
#endif

namespace brigade {

struct philox_out {
  uint32_t v[4];
};

BRIGADE_HD inline philox_out philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
  constexpr uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(m0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(m1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += w0;
    k1 += w1;
  }
  return {{c0, c1, c2, c3}};
}

/// A uniform float in [0, 1) from 24 random bits (exact in binary32).
BRIGADE_HD inline float uniform_from_bits(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

/// The sampling draw for a sequence as 24 random bits: keyed on the
/// request's seed, counted by the position of the token being sampled.
BRIGADE_HD inline uint32_t sampling_bits(uint64_t seed, uint32_t position) {
  const philox_out r = philox4x32(position, 0x73616D70u /* "samp" */, 0, 0, static_cast<uint32_t>(seed),
                                  static_cast<uint32_t>(seed >> 32));
  return r.v[0] >> 8;
}

/// The same draw as a uniform float in [0, 1): sampling_bits / 2^24.
BRIGADE_HD inline float sampling_uniform(uint64_t seed, uint32_t position) {
  return static_cast<float>(sampling_bits(seed, position)) * (1.0f / 16777216.0f);
}

}  // namespace brigade
