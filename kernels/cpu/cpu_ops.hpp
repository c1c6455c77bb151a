// CPU compute kernels of the engine, with a portable implementation and an
// AVX2+FMA+F16C one chosen at run time (`best_kernels`). Both compute in F32
// from F32 activations; weights are F32, F16, BF16 or Q8_0 rows in ggml's
// layout (kernels/model.hpp `weight`).
//
// The matrix kernel computes, for tokens t < n_tokens and weight rows
// n in [n0, n1):   y[t * ldy + n] (+)= dot(x + t * ldx, row n of w)
// so threads split a matrix by rows. The AVX2 kernel works on tiles of 3 rows
// x 4 tokens in registers, converting each weight vector once per tile, which
// is what makes a batch of B tokens cost far less than B single-token passes.
#pragma once

#include <cstdint>

#include "kernels/model/model.hpp"

namespace brigade::cpu {

struct kernel_set {
  const char* name;
  void (*matmul)(const weight& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy, int64_t n0,
                 int64_t n1, bool accumulate);
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a * x
  /// Causal attention of `n_q` query heads sharing one KV head, over n_pos
  /// cached positions: for each head g,
  ///   out[g] = softmax(scale * q[g] . k[j]) . v[j],  j < n_pos
  /// k[j] = k_base + slots[j] * slot_stride (likewise v); q[g] = q + g * hd;
  /// out[g] = out + g * hd. `scores` holds n_q * n_pos floats of scratch.
  /// The softmax sum is accumulated in double, as llama.cpp does.
  void (*attend)(const float* q, int n_q, int64_t hd, const float* k_base, const float* v_base, const int32_t* slots,
                 int32_t n_pos, int64_t slot_stride, float scale, float* scores, float* out);
};

const kernel_set& generic_kernels();
/// nullptr where the CPU lacks AVX2, FMA or F16C (or on other architectures).
const kernel_set* avx2_kernels();
/// AVX2 when available, else generic. BRIGADE_CPU_KERNELS=generic forces the
/// portable kernels (for comparisons).
const kernel_set& best_kernels();

}  // namespace brigade::cpu
