// AVX2 + FMA + F16C kernels, compiled with target attributes so the rest of
// the build needs no special flags; used only when the CPU reports all three.
#include "kernels/cpu/cpu_ops.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#define BRIGADE_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace brigade::cpu {

namespace {

BRIGADE_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Loaders: 8 consecutive weights of a row starting at element k, as F32.
struct load_f32 {
  BRIGADE_AVX2 static __m256 load(const unsigned char* row, int64_t k) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  }
  static float scalar(const unsigned char* row, int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};
struct load_f16 {
  BRIGADE_AVX2 static __m256 load(const unsigned char* row, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  }
  static float scalar(const unsigned char* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return f16_to_f32(h);
  }
};
struct load_bf16 {
  BRIGADE_AVX2 static __m256 load(const unsigned char* row, int64_t k) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static float scalar(const unsigned char* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return bf16_to_f32(h);
  }
};
struct load_q8_0 {
  BRIGADE_AVX2 static __m256 load(const unsigned char* row, int64_t k) {
    const unsigned char* blk = row + (k / q8_0_block_elems) * sizeof(q8_0_block);
    uint16_t d;
    std::memcpy(&d, blk, 2);
    const __m256i q =
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + k % q8_0_block_elems)));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(_cvtsh_ss(d)));
  }
  static float scalar(const unsigned char*, int64_t) { return 0.0f; }  // rows are whole blocks
};

/// R rows x T tokens, accumulated in registers over the whole row. The
/// loops over r and t must be fully unrolled (the pragmas) or the
/// accumulators live on the stack and the kernel runs at a third of the speed.
template <class L, int R, int T>
BRIGADE_AVX2 void tile(const unsigned char* w, size_t row_bytes, const float* x, int64_t ldx, int64_t K, float* y,
                       int64_t ldy, bool accumulate) {
  __m256 s[R][T];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) s[r][t] = _mm256_setzero_ps();
  const int64_t K8 = K & ~int64_t{7};
  for (int64_t k = 0; k < K8; k += 8) {
    __m256 wv[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) wv[r] = L::load(w + r * row_bytes, k);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + t * ldx + k);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) s[r][t] = _mm256_fmadd_ps(wv[r], xv, s[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      float v = hsum(s[r][t]);
      for (int64_t k = K8; k < K; ++k) v += L::scalar(w + r * row_bytes, k) * x[t * ldx + k];
      float& out = y[t * ldy + r];
      out = accumulate ? out + v : v;
    }
}

template <class L, int R>
BRIGADE_AVX2 void rows_all_tokens(const unsigned char* w, size_t row_bytes, const float* x, int64_t ldx,
                                  int64_t n_tokens, int64_t K, float* y, int64_t ldy, bool accumulate) {
  int64_t t = 0;
  for (; t + 4 <= n_tokens; t += 4) tile<L, R, 4>(w, row_bytes, x + t * ldx, ldx, K, y + t * ldy, ldy, accumulate);
  switch (n_tokens - t) {
    case 3: tile<L, R, 3>(w, row_bytes, x + t * ldx, ldx, K, y + t * ldy, ldy, accumulate); break;
    case 2: tile<L, R, 2>(w, row_bytes, x + t * ldx, ldx, K, y + t * ldy, ldy, accumulate); break;
    case 1: tile<L, R, 1>(w, row_bytes, x + t * ldx, ldx, K, y + t * ldy, ldy, accumulate); break;
    default: break;
  }
}

template <class L>
BRIGADE_AVX2 void matmul_typed(const weight& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
                               int64_t n0, int64_t n1, bool accumulate) {
  // Token blocks of 64 keep the activations in L2 while weight rows stream.
  constexpr int64_t token_block = 64;
  for (int64_t tb = 0; tb < n_tokens; tb += token_block) {
    const int64_t nt = std::min(token_block, n_tokens - tb);
    const float* xb = x + tb * ldx;
    float* yb = y + tb * ldy;
    int64_t n = n0;
    // 3 rows x 4 tokens: 12 accumulators + 3 weight vectors + 1 activation
    // vector = the 16 AVX2 registers, no spills. A single token (decode at
    // batch 1) is memory-bound: 4 rows in flight then.
    if (nt == 1)
      for (; n + 4 <= n1; n += 4)
        tile<L, 4, 1>(w.data + n * w.row_bytes, w.row_bytes, xb, ldx, w.n_cols, yb + n, ldy, accumulate);
    for (; n + 3 <= n1; n += 3)
      rows_all_tokens<L, 3>(w.data + n * w.row_bytes, w.row_bytes, xb, ldx, nt, w.n_cols, yb + n, ldy, accumulate);
    for (; n < n1; ++n)
      rows_all_tokens<L, 1>(w.data + n * w.row_bytes, w.row_bytes, xb, ldx, nt, w.n_cols, yb + n, ldy, accumulate);
  }
}

BRIGADE_AVX2 void matmul_avx2(const weight& w, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
                              int64_t n0, int64_t n1, bool accumulate) {
  switch (w.type) {
    case ggml_type::f32: return matmul_typed<load_f32>(w, x, ldx, n_tokens, y, ldy, n0, n1, accumulate);
    case ggml_type::f16: return matmul_typed<load_f16>(w, x, ldx, n_tokens, y, ldy, n0, n1, accumulate);
    case ggml_type::bf16: return matmul_typed<load_bf16>(w, x, ldx, n_tokens, y, ldy, n0, n1, accumulate);
    case ggml_type::q8_0: return matmul_typed<load_q8_0>(w, x, ldx, n_tokens, y, ldy, n0, n1, accumulate);
  }
}

BRIGADE_AVX2 float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

BRIGADE_AVX2 void axpy_avx2(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

/// Attention for a group of query heads sharing a KV head: each key and
/// value row is loaded once for the whole group (grouped-query attention).
BRIGADE_AVX2 void attend_avx2(const float* q, int n_q, int64_t hd, const float* k_base, const float* v_base,
                              const int32_t* slots, int32_t n_pos, int64_t slot_stride, float scale, float* scores,
                              float* out) {
  if (hd % 8 != 0 || n_q > 8) {
    generic_kernels().attend(q, n_q, hd, k_base, v_base, slots, n_pos, slot_stride, scale, scores, out);
    return;
  }
  float mx[8];
  for (int g = 0; g < n_q; ++g) mx[g] = -INFINITY;
  for (int32_t j = 0; j < n_pos; ++j) {
    const float* kj = k_base + slots[j] * slot_stride;
    for (int g = 0; g < n_q; ++g) {
      const float* qg = q + g * hd;
      __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(qg), _mm256_loadu_ps(kj));
      for (int64_t i = 8; i < hd; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), _mm256_loadu_ps(kj + i), acc);
      const float sc = hsum(acc) * scale;
      scores[static_cast<int64_t>(g) * n_pos + j] = sc;
      mx[g] = std::max(mx[g], sc);
    }
  }
  for (int g = 0; g < n_q; ++g) {
    float* sc = scores + static_cast<int64_t>(g) * n_pos;
    double sum = 0.0;
    for (int32_t j = 0; j < n_pos; ++j) {
      sc[j] = std::exp(sc[j] - mx[g]);
      sum += sc[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int32_t j = 0; j < n_pos; ++j) sc[j] *= inv;
    std::fill(out + g * hd, out + (g + 1) * hd, 0.0f);
  }
  for (int32_t j = 0; j < n_pos; ++j) {
    const float* vj = v_base + slots[j] * slot_stride;
    for (int g = 0; g < n_q; ++g) {
      const __m256 p = _mm256_set1_ps(scores[static_cast<int64_t>(g) * n_pos + j]);
      float* o = out + g * hd;
      for (int64_t i = 0; i < hd; i += 8)
        _mm256_storeu_ps(o + i, _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + i), _mm256_loadu_ps(o + i)));
    }
  }
}

}  // namespace

const kernel_set* avx2_kernels() {
  static const kernel_set k{"avx2+fma+f16c", matmul_avx2, dot_avx2, axpy_avx2, attend_avx2};
  __builtin_cpu_init();
  const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return ok ? &k : nullptr;
}

}  // namespace brigade::cpu

#else

namespace brigade::cpu {
const kernel_set* avx2_kernels() { return nullptr; }
}  // namespace brigade::cpu

#endif
