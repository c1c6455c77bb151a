// Deterministic float math shared by host and device code: the same bits on
// the CPU (g++, ISO mode: no contraction) and on the GPU (explicitly rounded
// intrinsics, so nvcc cannot fuse a multiply and an add). Sampling uses it so
// both backends turn the same logits into the same probabilities (docs/design.md,
// invariant 6); CUDA's expf and glibc's differ in the last bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/base/philox.hpp"  // BRIGADE_HD

namespace brigade {

#if defined(__CUDA_ARCH__)
BRIGADE_HD inline float det_mul(float a, float b) { return __fmul_rn(a, b); }
BRIGADE_HD inline float det_add(float a, float b) { return __fadd_rn(a, b); }
BRIGADE_HD inline float det_rint(float a) { return rintf(a); }
BRIGADE_HD inline float det_ldexp(float a, int e) { return ldexpf(a, e); }
#else
inline float det_mul(float a, float b) { return a * b; }
inline float det_add(float a, float b) { return a + b; }
inline float det_rint(float a) { return std::nearbyint(a); }
inline float det_ldexp(float a, int e) { return std::ldexp(a, e); }
#endif

/// e^x in float, within about 1 ulp, bit-identical on host and device:
/// x = n ln2 + r (Cody-Waite, |r| <= ln2 / 2), e^r by its Taylor series to
/// degree 8 (truncation under 1e-9 relative), times 2^n.
BRIGADE_HD inline float det_expf(float x) {
  if (!(x < 88.5f)) return x != x ? x : INFINITY;  // NaN stays NaN
  if (x < -104.0f) return 0.0f;                    // under the smallest subnormal
  const float n = det_rint(det_mul(x, 1.44269504f));
  float r = det_add(x, det_mul(n, -0.693145751953125f));  // ln2 high part: 12 bits, n * it is exact
  r = det_add(r, det_mul(n, -1.428606820309417e-06f));    // ln2 low part
  float p = 2.48015873e-05f;                              // 1/8!
  p = det_add(det_mul(p, r), 1.98412698e-04f);            // 1/7!
  p = det_add(det_mul(p, r), 1.38888889e-03f);            // 1/6!
  p = det_add(det_mul(p, r), 8.33333333e-03f);            // 1/5!
  p = det_add(det_mul(p, r), 4.16666667e-02f);            // 1/4!
  p = det_add(det_mul(p, r), 1.66666667e-01f);            // 1/3!
  p = det_add(det_mul(p, r), 0.5f);
  p = det_add(det_mul(p, r), 1.0f);
  p = det_add(det_mul(p, r), 1.0f);
  return det_ldexp(p, static_cast<int>(n));
}

// --- fixed-point probabilities ------------------------------------------------
// Sampling sums candidate weights as integers (e^(l - max) in units of
// 2^-48), so the sum is the same in any order: the CPU's sequential loop and
// the GPU's parallel scan pick the same token from the same logits.

constexpr int prob_bits = 48;

/// A weight in [0, 1] as an integer in units of 2^-48 (truncated).
BRIGADE_HD inline uint64_t prob_fixed(float w) {
  const float scaled = det_mul(w, 281474976710656.0f);  // 2^48: exact scaling
#if defined(__CUDA_ARCH__)
  return __float2ull_rz(scaled);
#else
  return static_cast<uint64_t>(scaled);
#endif
}

/// (a * b) >> s, rounded up when `ceil` and bits were shifted out; 0 <= s < 128.
BRIGADE_HD inline uint64_t mul_shr(uint64_t a, uint64_t b, int s, bool ceil) {
#if defined(__CUDA_ARCH__)
  const uint64_t lo = a * b, hi = __umul64hi(a, b);
#else
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  const uint64_t lo = static_cast<uint64_t>(p), hi = static_cast<uint64_t>(p >> 64);
#endif
  uint64_t r;
  bool rest;
  if (s == 0) {
    r = lo;
    rest = false;
  } else if (s < 64) {
    r = (lo >> s) | (hi << (64 - s));
    rest = (lo & ((uint64_t{1} << s) - 1)) != 0;
  } else {
    r = s == 64 ? hi : hi >> (s - 64);
    rest = lo != 0 || (s > 64 && (hi & ((uint64_t{1} << (s - 64)) - 1)) != 0);
  }
  return r + (ceil && rest ? 1 : 0);
}

/// ceil(top_p * total) for top_p in (0, 1): the mass a top-p cut must reach.
BRIGADE_HD inline uint64_t mass_threshold(float top_p, uint64_t total) {
#if defined(__CUDA_ARCH__)
  const uint32_t bits = __float_as_uint(top_p);
#else
  uint32_t bits;
  static_assert(sizeof bits == sizeof top_p, "float is 32 bits");
  std::memcpy(&bits, &top_p, sizeof bits);
#endif
  const uint32_t exp = (bits >> 23) & 0xFF, man = bits & 0x7FFFFF;
  // top_p = m * 2^-s
  const uint64_t m = exp ? (man | 0x800000u) : man;
  const int s = exp ? 150 - static_cast<int>(exp) : 149;
  return mul_shr(m, total, s < 128 ? s : 127, true);
}

/// The draw point in [0, total): floor(bits24 / 2^24 * total).
BRIGADE_HD inline uint64_t draw_point(uint32_t bits24, uint64_t total) { return mul_shr(bits24, total, 24, false); }

}  // namespace brigade
