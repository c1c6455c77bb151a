#include "kernels/model/ggml_types.hpp"

#include <cmath>

namespace brigade {

const char* ggml_type_name(uint32_t type) {
  // ggml's table (ggml.h); 4 and 5 were Q4_2/Q4_3, removed long ago.
  static const char* const names[] = {
      "F32",      "F16",      "Q4_0",    "Q4_1",  "Q4_2",       "Q4_3",       "Q5_0",       "Q5_1",
      "Q8_0",     "Q8_1",     "Q2_K",    "Q3_K",  "Q4_K",       "Q5_K",       "Q6_K",       "Q8_K",
      "IQ2_XXS",  "IQ2_XS",   "IQ3_XXS", "IQ1_S", "IQ4_NL",     "IQ3_S",      "IQ2_S",      "IQ4_XS",
      "I8",       "I16",      "I32",     "I64",   "F64",        "IQ1_M",      "BF16",       "Q4_0_4_4",
      "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",   "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  if (type >= sizeof(names) / sizeof(names[0])) return nullptr;
  return names[type];
}

bool ggml_type_supported(uint32_t type) {
  switch (static_cast<ggml_type>(type)) {
    case ggml_type::f32:
    case ggml_type::f16:
    case ggml_type::q8_0:
    case ggml_type::bf16: return true;
  }
  return false;
}

ggml_type_traits ggml_traits(ggml_type type) {
  switch (type) {
    case ggml_type::f32: return {1, 4};
    case ggml_type::f16: return {1, 2};
    case ggml_type::bf16: return {1, 2};
    case ggml_type::q8_0: return {q8_0_block_elems, sizeof(q8_0_block)};
  }
  return {1, 0};
}

void dequantize_row(ggml_type type, const void* src, float* dst, int64_t n) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  switch (type) {
    case ggml_type::f32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case ggml_type::f16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    case ggml_type::bf16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case ggml_type::q8_0:
      for (int64_t b = 0; b < n / q8_0_block_elems; ++b) {
        q8_0_block blk;
        std::memcpy(&blk, bytes + b * sizeof(q8_0_block), sizeof blk);
        const float d = f16_to_f32(blk.d);
        for (int j = 0; j < q8_0_block_elems; ++j) dst[b * q8_0_block_elems + j] = d * blk.qs[j];
      }
      return;
  }
}

void quantize_row_q8_0(const float* src, q8_0_block* dst, int64_t n) {
  for (int64_t b = 0; b < n / q8_0_block_elems; ++b) {
    const float* x = src + b * q8_0_block_elems;
    float amax = 0.0f;
    for (int j = 0; j < q8_0_block_elems; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dst[b].d = f32_to_f16(d);
    for (int j = 0; j < q8_0_block_elems; ++j) dst[b].qs[j] = static_cast<int8_t>(std::lround(x[j] * id));
  }
}

}  // namespace brigade
