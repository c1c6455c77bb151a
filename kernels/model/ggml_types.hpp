// Tensor element types of the GGUF format (ggml's numbering) and the scalar
// conversions brigade needs: F16 and BF16 to F32, and the Q8_0 block.
//
// brigade reads F32, F16, BF16 and Q8_0. The other ggml types are named here
// only so errors can say which unsupported type a file uses.
#pragma once

#include <cstdint>
#include <cstring>

namespace brigade {

enum class ggml_type : uint32_t {
  f32 = 0,
  f16 = 1,
  q8_0 = 8,
  bf16 = 30,
};

/// ggml's name for a type number ("F32", "Q4_K", ...), or nullptr when the
/// number is not a ggml type at all.
const char* ggml_type_name(uint32_t type);

/// Whether brigade can read tensors of this type.
bool ggml_type_supported(uint32_t type);

/// Elements per block and bytes per block of a supported type.
struct ggml_type_traits {
  uint32_t block_elems;
  uint32_t block_bytes;
};
ggml_type_traits ggml_traits(ggml_type type);

/// Q8_0: 32 int8 weights sharing one F16 scale (34 bytes).
constexpr int q8_0_block_elems = 32;
struct q8_0_block {
  uint16_t d;  // F16 scale
  int8_t qs[q8_0_block_elems];
};
static_assert(sizeof(q8_0_block) == 34, "Q8_0 blocks are 34 bytes in GGUF");

inline float f16_to_f32(uint16_t h) {
  // IEEE half -> single, exact for every input (subnormals, inf, NaN).
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// Round-to-nearest-even single -> half (NaN stays NaN, overflow to inf).
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow/inf
  if (abs < 0x38800000u) {                                               // result is subnormal or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float bf16_to_f32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// Round-to-nearest-even single -> bfloat16 (NaN stays NaN).
inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

/// Converts `n` elements of `type` starting at `src` to F32. For Q8_0, `n`
/// must be a multiple of 32 and `src` point at a block boundary.
void dequantize_row(ggml_type type, const void* src, float* dst, int64_t n);

/// Quantises `n` F32 values (a multiple of 32) into Q8_0 blocks as ggml does
/// (scale = max|x| / 127, round to nearest).
void quantize_row_q8_0(const float* src, q8_0_block* dst, int64_t n);

}  // namespace brigade
