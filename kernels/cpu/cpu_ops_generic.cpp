// Portable CPU kernels: dequantise a weight row once, then dot it with every
// token's activations.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_ops.hpp"

namespace brigade::cpu {

namespace {

float dot_generic(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy_generic(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void attend_generic(const float* q, int n_q, int64_t hd, const float* k_base, const float* v_base, const int32_t* slots,
                    int32_t n_pos, int64_t slot_stride, float scale, float* scores, float* out) {
  for (int g = 0; g < n_q; ++g) {
    const float* qg = q + g * hd;
    float* sc = scores + static_cast<int64_t>(g) * n_pos;
    float mx = -INFINITY;
    for (int32_t j = 0; j < n_pos; ++j) {
      sc[j] = dot_generic(qg, k_base + slots[j] * slot_stride, hd) * scale;
      mx = std::max(mx, sc[j]);
    }
    double sum = 0.0;
    for (int32_t j = 0; j < n_pos; ++j) {
      sc[j] = std::exp(sc[j] - mx);
      sum += sc[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    float* o = out + g * hd;
    std::fill(o, o + hd, 0.0f);
    for (int32_t j = 0; j < n_pos; ++j) axpy_generic(sc[j] * inv, v_base + slots[j] * slot_stride, o, hd);
  }
}

void matmul_generic(const weight& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy, int64_t n0,
                    int64_t n1, bool accumulate) {
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(w.n_cols));
  for (int64_t n = n0; n < n1; ++n) {
    dequantize_row(w.type, w.data + static_cast<size_t>(n) * w.row_bytes, row.data(), w.n_cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float v = dot_generic(row.data(), x + t * ldx, w.n_cols);
      float& out = y[t * ldy + n];
      out = accumulate ? out + v : v;
    }
  }
}

}  // namespace

const kernel_set& generic_kernels() {
  static const kernel_set k{"generic", matmul_generic, dot_generic, axpy_generic, attend_generic};
  return k;
}

const kernel_set& best_kernels() {
  static const kernel_set* chosen = [] {
    const char* force = std::getenv("BRIGADE_CPU_KERNELS");
    if (force && std::strcmp(force, "generic") == 0) return &generic_kernels();
    const kernel_set* avx2 = avx2_kernels();
    return avx2 ? avx2 : &generic_kernels();
  }();
  return *chosen;
}

}  // namespace brigade::cpu
