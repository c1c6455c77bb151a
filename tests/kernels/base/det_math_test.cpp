// The deterministic math that lets the CPU and CUDA backends sample the same
// token (kernels/det_math.hpp): its exp is accurate, and the fixed-point
// helpers compute exactly what they promise (checked against long double and
// 128-bit integer arithmetic on random inputs).
#include "kernels/base/det_math.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace brigade {
namespace {

TEST(DetMath, ExpIsWithinTwoUlpOfTheTrueValue) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-103.0f, 88.0f);
  for (int i = 0; i < 200000; ++i) {
    const float x = i < 1000 ? -static_cast<float>(i) / 10.0f : d(rng);
    const long double want = std::exp(static_cast<long double>(x));
    const float got = det_expf(x);
    if (want < 1.2e-38L) {  // subnormal results: absolute error within one subnormal step per ulp
      EXPECT_NEAR(static_cast<double>(got), static_cast<double>(want), 3e-45) << x;
      continue;
    }
    const long double ulp = std::nextafter(static_cast<float>(want), INFINITY) - static_cast<float>(want);
    EXPECT_LE(std::fabs(static_cast<long double>(got) - want), 2 * ulp) << "x = " << x;
  }
  EXPECT_EQ(det_expf(0.0f), 1.0f);
  EXPECT_EQ(det_expf(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(det_expf(100.0f)));
  EXPECT_TRUE(std::isnan(det_expf(NAN)));
}

TEST(DetMath, FixedPointHelpersAreExact) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t total = rng() >> (1 + rng() % 40);          // below 2^63
    const uint32_t bits = static_cast<uint32_t>(rng() >> 40);  // 24 bits
    const unsigned __int128 p = static_cast<unsigned __int128>(bits) * total;
    EXPECT_EQ(draw_point(bits, total), static_cast<uint64_t>(p >> 24));
    EXPECT_LT(draw_point(bits, total), total == 0 ? 1 : total);
    // ceil(top_p * total), top_p in (0, 1)
    float top_p = std::ldexp(static_cast<float>(rng() % (1u << 24)) + 1.0f, -24 - static_cast<int>(rng() % 30));
    if (top_p >= 1.0f) top_p = 0.5f;
    int e = 0;
    const float f = std::frexp(top_p, &e);  // top_p = f 2^e, f in [0.5, 1): m = f 2^24 is an integer
    const unsigned __int128 m = static_cast<unsigned __int128>(std::ldexp(f, 24));
    const int sh = 24 - e;
    const unsigned __int128 prod = m * total, one = 1;
    const unsigned __int128 want = sh >= 127 ? (prod != 0) : (prod + (one << sh) - 1) >> sh;
    EXPECT_EQ(mass_threshold(top_p, total), static_cast<uint64_t>(want)) << top_p << " " << total;
  }
  EXPECT_EQ(mass_threshold(0.5f, 10), 5u);
  EXPECT_EQ(mass_threshold(0.5f, 11), 6u);
  EXPECT_EQ(mass_threshold(1e-30f, 1000), 1u);
  EXPECT_EQ(prob_fixed(1.0f), uint64_t{1} << prob_bits);
  EXPECT_EQ(prob_fixed(0.0f), 0u);
  EXPECT_EQ(mul_shr(3, 5, 1, true), 8u);
  EXPECT_EQ(mul_shr(3, 5, 1, false), 7u);
  EXPECT_EQ(mul_shr(uint64_t{1} << 63, 4, 64, false), 2u);
  EXPECT_EQ(mul_shr(uint64_t{1} << 63, 5, 64, true), 3u);  // 2.5 rounded up
  EXPECT_EQ(mul_shr(uint64_t{1} << 63, 5, 65, true), 2u);  // 1.25 rounded up
  EXPECT_EQ(mul_shr(uint64_t{1} << 63, 5, 65, false), 1u);
}

}  // namespace
}  // namespace brigade
