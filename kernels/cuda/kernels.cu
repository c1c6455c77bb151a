// The CUDA kernels of the engine's batched step and their launchers
// (declared in kernels.cuh, which says what each computes). Used by the
// backend (cuda_engine.cu) and the check program (cuda_check.cu), which runs
// each launcher against the CPU reference. Layouts follow the CPU backend (cpu_engine.cpp):
//
//   activations   row-major (token, feature), float
//   weights       ggml rows: weight row n holds the K inputs of output n,
//                 F32, F16, BF16 or Q8_0 (34-byte blocks of 32)
//   KV cache      per layer (slot, n_head_kv * head_dim) float; the slot of
//                 position j of a token's sequence is
//                 blocks[boff + j / bs] * bs + j % bs
//
// Every launcher returns the launch error (cudaGetLastError), never aborts.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/base/det_math.hpp"
#include "kernels/base/philox.hpp"
#include "kernels/cuda/kernels.cuh"
#include "kernels/model/ggml_types.hpp"

namespace brigade::cuda::k {

// --- element loads and reductions --------------------------------------------

template <ggml_type W>
__device__ __forceinline__ float load_w(const unsigned char* row, int64_t k) {
  if constexpr (W == ggml_type::f32) {
    return reinterpret_cast<const float*>(row)[k];
  } else if constexpr (W == ggml_type::f16) {
    return __half2float(reinterpret_cast<const __half*>(row)[k]);
  } else if constexpr (W == ggml_type::bf16) {
    return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(row)[k]);
  } else {
    const q8_0_block* b = reinterpret_cast<const q8_0_block*>(row) + k / q8_0_block_elems;
    __half_raw raw;
    raw.x = b->d;
    return __half2float(__half(raw)) * static_cast<float>(b->qs[k % q8_0_block_elems]);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
/// thread gets the result. `shared` holds 32 doubles.
__device__ __forceinline__ double block_sum(double v, double* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  double t = lane < n_warps ? shared[lane] : 0.0;
  return warp_sum(t);
}

// --- embedding gather ----------------------------------------------------------

// grid (T), block 256: x[i] = row tokens[i] of the table, as float.
template <ggml_type W>
__global__ void embed_kernel(const unsigned char* table, size_t row_bytes, const int32_t* tokens, float* x, int64_t d) {
  const int64_t i = blockIdx.x;
  const unsigned char* row = table + static_cast<size_t>(tokens[i]) * row_bytes;
  for (int64_t e = threadIdx.x; e < d; e += blockDim.x) x[i * d + e] = load_w<W>(row, e);
}

// --- RMSNorm fused with the residual add -----------------------------------------

// grid (n_rows), block 256. Row r = rows ? rows[b] : b of x: when `delta` is
// set, x[r] += delta[r] first (the residual); then
//   y[b] = x[r] * (1 / sqrt(mean(x[r]^2) + eps)) * g
// with the sum of squares in double, as llama.cpp and the CPU backend do.
__global__ void add_rmsnorm_kernel(float* x, const float* delta, const float* g, float* y, const int32_t* rows,
                                   int64_t d, float eps) {
  __shared__ double red[32];
  const int64_t b = blockIdx.x;
  const int64_t r = rows ? rows[b] : b;
  float* xr = x + r * d;
  double sum = 0.0;
  for (int64_t e = threadIdx.x; e < d; e += blockDim.x) {
    float v = xr[e];
    if (delta) {
      v += delta[r * d + e];
      xr[e] = v;
    }
    sum += static_cast<double>(v * v);
  }
  sum = block_sum(sum, red);
  const float scale = 1.0f / sqrtf(static_cast<float>(sum / static_cast<double>(d)) + eps);
  for (int64_t e = threadIdx.x; e < d; e += blockDim.x) y[b * d + e] = (xr[e] * scale) * g[e];
}

// --- matrix products -------------------------------------------------------------

/// Writes one output: with SwiGLU y = silu(v) * u, else y = v; added to y
/// with `accumulate`. The epilogue of every matmul kernel.
template <bool SWIGLU>
__device__ __forceinline__ void write_out(float& o, float v, float u, int accumulate) {
  if constexpr (SWIGLU) v = v / (1.0f + expf(-v)) * u;
  o = accumulate ? o + v : v;
}

/// The end of a warp-per-row matmul: sums each token's partial dot products
/// over the warp, and lane 0 writes y[t * ldy] for the nt tokens.
template <bool SWIGLU>
__device__ __forceinline__ void finish_row(float (&acc)[mm_tokens], float (&acc2)[mm_tokens], int lane, int nt,
                                           float* y, int64_t ldy, int accumulate) {
#pragma unroll
  for (int t = 0; t < mm_tokens; ++t) {
    acc[t] = warp_sum(acc[t]);
    if constexpr (SWIGLU) acc2[t] = warp_sum(acc2[t]);
  }
  if (lane == 0)
#pragma unroll
    for (int t = 0; t < mm_tokens; ++t)
      if (t < nt) write_out<SWIGLU>(y[t * ldy], acc[t], acc2[t], accumulate);
}

// grid (ceil(N / 8), ceil(T / 8)), block 256. One warp per weight row n and
// 8 tokens t:  y[t * ldy + n] (+)= dot(x[t * ldx ...], row n)
// With SWIGLU, `w2` is the up projection and the warp writes
//   y[t * ldy + n] = silu(dot(x, w row n)) * dot(x, w2 row n).
//
// VEC, the fast path for F16 and BF16 weights (K a multiple of 8, 16-byte
// aligned rows and activations): each lane loads 8 weights (16 bytes) at a
// time and the loop is unrolled so several loads are in flight.
template <ggml_type W>
__device__ __forceinline__ void load8(const unsigned char* __restrict__ row, int64_t k0, float (&out)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(row) + k0 / 8);
  const uint32_t parts[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 f;
    if constexpr (W == ggml_type::f16) {
      __half2 h;
      memcpy(&h, &parts[i], 4);
      f = __half22float2(h);
    } else {
      __nv_bfloat162 h;
      memcpy(&h, &parts[i], 4);
      f = __bfloat1622float2(h);
    }
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

template <ggml_type W, bool SWIGLU, bool VEC>
__global__ void __launch_bounds__(mm_warps * 32)
    matmul_kernel(const unsigned char* __restrict__ w, const unsigned char* __restrict__ w2, size_t row_bytes,
                  int64_t K, int64_t N, const float* __restrict__ x, int64_t ldx, int64_t T, float* y, int64_t ldy,
                  int accumulate) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * mm_warps + warp;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * mm_tokens;
  if (n >= N) return;  // the whole warp leaves together
  const int nt = static_cast<int>(T - t0 < mm_tokens ? T - t0 : mm_tokens);
  const unsigned char* row = w + static_cast<size_t>(n) * row_bytes;
  const unsigned char* row2 = SWIGLU ? w2 + static_cast<size_t>(n) * row_bytes : nullptr;
  float acc[mm_tokens], acc2[mm_tokens];
#pragma unroll
  for (int t = 0; t < mm_tokens; ++t) acc[t] = acc2[t] = 0.0f;
  if constexpr (VEC) {
#pragma unroll 4
    for (int64_t k0 = lane * 8; k0 < K; k0 += 32 * 8) {
      float a[8], b[8];
      load8<W>(row, k0, a);
      if constexpr (SWIGLU) load8<W>(row2, k0, b);
#pragma unroll
      for (int t = 0; t < mm_tokens; ++t)
        if (t < nt) {
          const float4* xp = reinterpret_cast<const float4*>(x + (t0 + t) * ldx + k0);
          const float4 x0 = xp[0], x1 = xp[1];
          const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            acc[t] = fmaf(a[e], xv[e], acc[t]);
            if constexpr (SWIGLU) acc2[t] = fmaf(b[e], xv[e], acc2[t]);
          }
        }
    }
  } else {
    for (int64_t k = lane; k < K; k += 32) {
      const float a = load_w<W>(row, k);
      float b = 0.0f;
      if constexpr (SWIGLU) b = load_w<W>(row2, k);
#pragma unroll
      for (int t = 0; t < mm_tokens; ++t)
        if (t < nt) {
          const float xv = x[(t0 + t) * ldx + k];
          acc[t] = fmaf(a, xv, acc[t]);
          if constexpr (SWIGLU) acc2[t] = fmaf(b, xv, acc2[t]);
        }
    }
  }
  finish_row<SWIGLU>(acc, acc2, lane, nt, y + t0 * ldy + n, ldy, accumulate);
}

// Tensor cores for batches of 16 tokens and more, F16 weights: mma.sync
// m16n8k16 (F16 x F16, FP32 accumulation). Each activation is split into an
// F16 high part and an F16 low part (x = hi + lo to about 22 bits), and both
// are multiplied with the weights as stored, so the result keeps close to
// FP32 accuracy (the check's 1e-5 bound) at twice the tensor work, which a
// memory-bound step does not feel. A block of 4 warps takes 32 weight rows
// (8 per warp) and 64 tokens; per 32-wide slice of K it stages the tokens'
// activations as hi/lo halves in shared memory, and each thread loads 16
// bytes of its weight row (the next slice's load is issued before this
// slice's work), so every weight is read once per 64 tokens.
// K is permuted consistently in both operands: thread q of a row group holds
// the 8 consecutive k of 8q..8q+7 (one 16-byte load of weights, one 16-byte
// shared read of activations per row); the first k16 step takes the first 4
// of them, the second the last 4; a dot product does not depend on the order
// of its terms.
// F16 range: each token's slice is scaled by a power of two 2^-e so that its
// largest |x| lies in [2^14, 2^15) before the split, and its products by 2^e
// after (each slice is multiplied into a zeroed accumulator and added): large
// activations fit F16 and small ones keep about 22 bits.
constexpr int tc_warps = 4;
constexpr int tc_rows = tc_warps * 8;
constexpr int tc_tokens = 64;
constexpr int tc_k = 32;  // one warp's lanes stage one token's slice

__device__ __forceinline__ void mma_16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                          uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// With gridDim.z = S > 1 (split-K, when N / 32 blocks would leave
// multiprocessors idle), block z takes the z-th of S equal runs of 32-wide
// slices and writes its raw sums to part[z][t][n] (SwiGLU: the up sums after
// all S * T * N of those); matmul_reduce_kernel adds the S parts in order,
// so results do not change from run to run (no float atomics).
template <bool SWIGLU>
__global__ void __launch_bounds__(tc_warps * 32)
    matmul_tc_kernel(const unsigned char* __restrict__ w, const unsigned char* __restrict__ w2, size_t row_bytes,
                     int64_t K, int64_t N, const float* __restrict__ x, int64_t ldx, int64_t T, float* y, int64_t ldy,
                     int accumulate, float* part) {
  __shared__ __align__(16) __half xs_hi[tc_tokens][tc_k];  // (token, k of the slice)
  __shared__ __align__(16) __half xs_lo[tc_tokens][tc_k];
  __shared__ float xs_scale[tc_tokens];  // 2^e: this slice's products are multiplied by it
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, q = lane & 3;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * tc_rows + warp * 8;
  const int64_t t_base = static_cast<int64_t>(blockIdx.y) * tc_tokens;
  const int nt = static_cast<int>(T - t_base < tc_tokens ? T - t_base : tc_tokens);
  const int64_t row = n0 + g;
  const bool has_row = row < N;
  const uint4* wrow = reinterpret_cast<const uint4*>(w + static_cast<size_t>(has_row ? row : 0) * row_bytes);
  const uint4* wrow2 =
      SWIGLU ? reinterpret_cast<const uint4*>(w2 + static_cast<size_t>(has_row ? row : 0) * row_bytes) : nullptr;
  const uint4 zero{0, 0, 0, 0};
  // (the range of this block's split, set below, bounds the prefetch)
  int64_t k_limit = K;
  auto load_w = [&](const uint4* r, int64_t k0) { return has_row && k0 < k_limit ? __ldg(r + k0 / 8 + q) : zero; };
  float acc[4][4], acc2[4][4];
#pragma unroll
  for (int m = 0; m < 4; ++m)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[m][c] = acc2[m][c] = 0.0f;
  const int64_t slices = K / tc_k, splits = gridDim.z;
  const int64_t k_begin = blockIdx.z * slices / splits * tc_k, k_end = (blockIdx.z + 1) * slices / splits * tc_k;
  k_limit = k_end;
  uint4 wv = load_w(wrow, k_begin), wv2 = SWIGLU ? load_w(wrow2, k_begin) : zero;
  for (int64_t k0 = k_begin; k0 < k_end; k0 += tc_k) {
    const uint4 wv_next = load_w(wrow, k0 + tc_k);  // in flight while this slice is staged and multiplied
    const uint4 wv2_next = SWIGLU ? load_w(wrow2, k0 + tc_k) : zero;
    __syncthreads();                                          // the previous slice's reads of xs are done
    for (int tok = warp; tok < tc_tokens; tok += tc_warps) {  // a warp per token, a lane per k
      float v = tok < nt ? x[(t_base + tok) * ldx + k0 + lane] : 0.0f;
      float big = fabsf(v);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) big = fmaxf(big, __shfl_xor_sync(0xffffffffu, big, o));
      // Every slice is brought to a largest |v| in [2^14, 2^15): large ones
      // fit F16, small ones keep their low part out of F16's subnormals.
      const int e = big > 0.0f && big <= 3.0e38f ? max(ilogbf(big) - 14, -100) : 0;
      v = ldexpf(v, -e);
      const __half hi = __float2half_rn(v);
      xs_hi[tok][lane] = hi;
      xs_lo[tok][lane] = __float2half_rn(v - __half2float(hi));
      if (lane == 0) xs_scale[tok] = ldexpf(1.0f, e);
    }
    __syncthreads();
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      if (m * 16 >= nt) break;  // the same for the whole block
      const int r0 = m * 16 + g, r1 = r0 + 8;
      const uint4 h0 = *reinterpret_cast<const uint4*>(&xs_hi[r0][8 * q]);
      const uint4 h1 = *reinterpret_cast<const uint4*>(&xs_hi[r1][8 * q]);
      const uint4 l0 = *reinterpret_cast<const uint4*>(&xs_lo[r0][8 * q]);
      const uint4 l1 = *reinterpret_cast<const uint4*>(&xs_lo[r1][8 * q]);
      float part[4] = {0.0f, 0.0f, 0.0f, 0.0f}, part2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      // k16 step 0: halves 0..3 of each 8; step 1: halves 4..7.
      mma_16816(part, h0.x, h1.x, h0.y, h1.y, wv.x, wv.y);
      mma_16816(part, l0.x, l1.x, l0.y, l1.y, wv.x, wv.y);
      mma_16816(part, h0.z, h1.z, h0.w, h1.w, wv.z, wv.w);
      mma_16816(part, l0.z, l1.z, l0.w, l1.w, wv.z, wv.w);
      if constexpr (SWIGLU) {
        mma_16816(part2, h0.x, h1.x, h0.y, h1.y, wv2.x, wv2.y);
        mma_16816(part2, l0.x, l1.x, l0.y, l1.y, wv2.x, wv2.y);
        mma_16816(part2, h0.z, h1.z, h0.w, h1.w, wv2.z, wv2.w);
        mma_16816(part2, l0.z, l1.z, l0.w, l1.w, wv2.z, wv2.w);
      }
      const float s0 = xs_scale[r0], s1 = xs_scale[r1];  // part[0..1]: token r0; part[2..3]: token r1
      acc[m][0] = fmaf(part[0], s0, acc[m][0]);
      acc[m][1] = fmaf(part[1], s0, acc[m][1]);
      acc[m][2] = fmaf(part[2], s1, acc[m][2]);
      acc[m][3] = fmaf(part[3], s1, acc[m][3]);
      if constexpr (SWIGLU) {
        acc2[m][0] = fmaf(part2[0], s0, acc2[m][0]);
        acc2[m][1] = fmaf(part2[1], s0, acc2[m][1]);
        acc2[m][2] = fmaf(part2[2], s1, acc2[m][2]);
        acc2[m][3] = fmaf(part2[3], s1, acc2[m][3]);
      }
    }
    wv = wv_next;
    if constexpr (SWIGLU) wv2 = wv2_next;
  }
  // acc[m][0..1]: token m*16 + g, rows n0 + 2q + {0, 1}; acc[m][2..3]: token + 8.
#pragma unroll
  for (int m = 0; m < 4; ++m)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int tok = m * 16 + g + (c >= 2 ? 8 : 0);
      const int64_t n = n0 + 2 * q + (c & 1);
      if (tok >= nt || n >= N) continue;
      if (splits > 1) {
        float* pp = part + (static_cast<int64_t>(blockIdx.z) * T + t_base + tok) * N + n;
        pp[0] = acc[m][c];
        if constexpr (SWIGLU) pp[splits * T * N] = acc2[m][c];
        continue;
      }
      write_out<SWIGLU>(y[(t_base + tok) * ldy + n], acc[m][c], acc2[m][c], accumulate);
    }
}

// grid (ceil(T * N / 256)), block 256: the split-K sums of matmul_tc_kernel,
// added in split order, then the same epilogue (SwiGLU, accumulate).
__global__ void matmul_reduce_kernel(const float* part, int splits, int64_t T, int64_t N, float* y, int64_t ldy,
                                     int accumulate, int swiglu) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= T * N) return;
  const int64_t t = i / N, n = i % N;
  float v = 0.0f, u = 0.0f;
  for (int z = 0; z < splits; ++z) {
    v += part[z * T * N + i];
    if (swiglu) u += part[(splits + z) * T * N + i];
  }
  if (swiglu)
    write_out<true>(y[t * ldy + n], v, u, accumulate);
  else
    write_out<false>(y[t * ldy + n], v, u, accumulate);
}

// --- RoPE fused with the KV-cache write -------------------------------------------

// grid (T), block 128. Token i at position pos[i]: rotates its query heads in
// place, rotates its key heads into the K cache at slot[i] and copies its
// values into the V cache there. Angles as llama.cpp (and the CPU backend)
// compute them: theta_p = pos * theta_scale^p, the power built by repeated
// float multiplication. q, k and v rows are ldq, ldkv and ldkv floats apart
// (one fused QKV buffer: ldq = ldkv = d + 2 kv_dim).
__global__ void rope_kv_kernel(float* q, const float* k, const float* v, float* k_cache, float* v_cache,
                               const int32_t* pos, const int32_t* slot, int n_head, int n_head_kv, int hd, int64_t ldq,
                               int64_t ldkv, int64_t kv_dim, float theta_scale) {
  const int64_t i = blockIdx.x;
  const int half = hd / 2;
  const int64_t s = slot[i];
  const float p0 = static_cast<float>(pos[i]);
  for (int idx = threadIdx.x; idx < (n_head + n_head_kv) * half; idx += blockDim.x) {
    const int h = idx / half, p = idx % half;
    float theta = p0;
    for (int j = 0; j < p; ++j) theta *= theta_scale;
    const float c = cosf(theta), sn = sinf(theta);
    if (h < n_head) {
      float* qp = q + i * ldq + static_cast<int64_t>(h) * hd + 2 * p;
      const float x0 = qp[0], x1 = qp[1];
      qp[0] = x0 * c - x1 * sn;
      qp[1] = x0 * sn + x1 * c;
    } else {
      const int64_t off = static_cast<int64_t>(h - n_head) * hd + 2 * p;
      const float x0 = k[i * ldkv + off], x1 = k[i * ldkv + off + 1];
      k_cache[s * kv_dim + off] = x0 * c - x1 * sn;
      k_cache[s * kv_dim + off + 1] = x0 * sn + x1 * c;
    }
  }
  for (int64_t e = threadIdx.x; e < kv_dim; e += blockDim.x) v_cache[s * kv_dim + e] = v[i * ldkv + e];
}

// --- paged grouped-query attention ---------------------------------------------------

// grid (T, n_head, splits), block 128. Token i, query head h (KV head
// h / group) attends to positions 0 .. npos[i] - 1 of its sequence (causal:
// itself and earlier; prefill chunks and decode tokens alike):
//   out = softmax(scale * q . k_j) . v_j
// Each warp runs an online softmax over every 4th position; the warps'
// results are merged at the end. With splits > 1 (flash-decoding: few
// tokens, long contexts), block z takes the z-th of `splits` equal slices of
// the positions and writes its unnormalised partial (max, sum, sum of
// weighted values: hd + 2 floats) to `part`; attention_combine_kernel merges.
__global__ void __launch_bounds__(att_warps * 32)
    attention_kernel(const float* q, const float* k_cache, const float* v_cache, float* out, const int32_t* npos,
                     const int32_t* boff, const int32_t* blocks, int bs, int group, int hd, int64_t ldq, int64_t ldo,
                     int64_t kv_dim, float scale, float* part) {
  __shared__ float part_m[att_warps], part_l[att_warps];
  __shared__ float part_acc[att_warps][att_max_per_lane * 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t i = blockIdx.x;
  const int h = blockIdx.y;
  const int splits = gridDim.z, z = blockIdx.z;
  const int64_t kv_off = static_cast<int64_t>(h / group) * hd;
  const float* qh = q + i * ldq + static_cast<int64_t>(h) * hd;
  float qr[att_max_per_lane], acc[att_max_per_lane];
#pragma unroll
  for (int e = 0; e < att_max_per_lane; ++e) {
    const int idx = lane + 32 * e;
    qr[e] = idx < hd ? qh[idx] : 0.0f;
    acc[e] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int32_t n = npos[i];
  const int32_t per = (n + splits - 1) / splits;
  const int32_t j0 = z * per, j1 = min(n, j0 + per);
  const int32_t* bt = blocks + boff[i];
  for (int32_t j = j0 + warp; j < j1; j += att_warps) {
    const int64_t s = static_cast<int64_t>(bt[j / bs]) * bs + j % bs;
    const float* kr = k_cache + s * kv_dim + kv_off;
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < att_max_per_lane; ++e) {
      const int idx = lane + 32 * e;
      if (idx < hd) dot = fmaf(qr[e], kr[idx], dot);
    }
    const float sc = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, sc);
    const float corr = expf(m - m_new);  // 0 for the first position (m = -inf)
    const float p = expf(sc - m_new);
    l = l * corr + p;
    const float* vr = v_cache + s * kv_dim + kv_off;
#pragma unroll
    for (int e = 0; e < att_max_per_lane; ++e) {
      const int idx = lane + 32 * e;
      if (idx < hd) acc[e] = fmaf(p, vr[idx], acc[e] * corr);
    }
    m = m_new;
  }
  if (lane == 0) {
    part_m[warp] = m;
    part_l[warp] = l;
  }
#pragma unroll
  for (int e = 0; e < att_max_per_lane; ++e) part_acc[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  float big = -INFINITY;
  for (int w = 0; w < att_warps; ++w)
    if (part_l[w] > 0.0f) big = fmaxf(big, part_m[w]);
  float total = 0.0f;
  float f[att_warps];
#pragma unroll
  for (int w = 0; w < att_warps; ++w) {
    f[w] = part_l[w] > 0.0f ? expf(part_m[w] - big) : 0.0f;  // a warp that saw no position counts 0
    total += part_l[w] * f[w];
  }
  if (splits == 1) {
    for (int idx = threadIdx.x; idx < hd; idx += blockDim.x) {
      float o = 0.0f;
#pragma unroll
      for (int w = 0; w < att_warps; ++w) o += part_acc[w][idx] * f[w];
      out[i * ldo + static_cast<int64_t>(h) * hd + idx] = o / total;
    }
    return;
  }
  float* pp = part + ((i * gridDim.y + h) * splits + z) * (hd + 2);
  if (threadIdx.x == 0) {
    pp[0] = big;    // -inf when this slice was empty
    pp[1] = total;  // 0 then
  }
  for (int idx = threadIdx.x; idx < hd; idx += blockDim.x) {
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < att_warps; ++w) o += part_acc[w][idx] * f[w];
    pp[2 + idx] = o;
  }
}

// grid (T, n_head), block 64: merges the `splits` partials of attention_kernel.
__global__ void attention_combine_kernel(const float* part, float* out, int splits, int hd, int64_t ldo) {
  const int64_t i = blockIdx.x;
  const int h = blockIdx.y;
  const float* pp = part + (i * gridDim.y + h) * splits * (hd + 2);
  float big = -INFINITY;
  for (int z = 0; z < splits; ++z)
    if (pp[z * (hd + 2) + 1] > 0.0f) big = fmaxf(big, pp[z * (hd + 2)]);
  float total = 0.0f;
  for (int z = 0; z < splits; ++z) {
    const float l = pp[z * (hd + 2) + 1];
    if (l > 0.0f) total += l * expf(pp[z * (hd + 2)] - big);
  }
  for (int idx = threadIdx.x; idx < hd; idx += blockDim.x) {
    float o = 0.0f;
    for (int z = 0; z < splits; ++z) {
      const float l = pp[z * (hd + 2) + 1];
      if (l > 0.0f) o += pp[z * (hd + 2) + 2 + idx] * expf(pp[z * (hd + 2)] - big);
    }
    out[i * ldo + static_cast<int64_t>(h) * hd + idx] = o / total;
  }
}

// --- sampling -------------------------------------------------------------------------

__device__ __forceinline__ uint32_t order_bits(float v) {  // ascending float order as unsigned order
  if (v == 0.0f) v = 0.0f;                                 // -0 and +0 compare equal, as on the CPU
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/// Prefix sums of the integer weights w[0..n), split into contiguous chunks
/// of `chunk` per thread: returns this thread's exclusive start; shared[last]
/// is the total. Integer sums: the same as the CPU's sequential ones, exactly.
/// `shared` holds sample_threads values.
__device__ __forceinline__ uint64_t chunk_scan(const uint64_t* w, int32_t n, int32_t chunk, uint64_t* shared) {
  const int t = threadIdx.x;
  uint64_t own = 0;
  for (int32_t i = t * chunk; i < n && i < (t + 1) * chunk; ++i) own += w[i];
  __syncthreads();
  shared[t] = own;
  __syncthreads();
  for (int o = 1; o < sample_threads; o <<= 1) {  // Hillis-Steele inclusive scan
    const uint64_t add = t >= o ? shared[t - o] : 0;
    __syncthreads();
    shared[t] += add;
    __syncthreads();
  }
  return t ? shared[t - 1] : 0;
}

// grid (rows), block 1024. Row r samples from logits[r] with desc[r], exactly
// as sampling.cpp does on the CPU: greedy = first index of the maximum;
// otherwise candidates ordered by (logit / temperature descending, id
// ascending), the first top_k kept, softmax as integer weights
// (det_math.hpp), cut at top_p cumulative mass, one Philox draw keyed on
// (seed, position). `keys` holds `pow2` and `probs` n_vocab values per row.
__global__ void __launch_bounds__(sample_threads)
    sample_kernel(const float* logits, int32_t n_vocab, const sample_desc* desc, uint64_t* keys, uint64_t* probs,
                  int32_t pow2, int32_t* out) {
  __shared__ uint64_t scan[sample_threads];
  __shared__ float best_v[32];
  __shared__ int32_t best_i[32];
  __shared__ int32_t found;
  const int64_t r = blockIdx.x;
  const float* lg = logits + r * n_vocab;
  const sample_desc p = desc[r];
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  if (p.temperature <= 0.0f || p.top_k == 1) {
    float bv = -INFINITY;
    int32_t bi = INT32_MAX;
    for (int32_t i = t; i < n_vocab; i += blockDim.x) {
      const float v = lg[i];
      if (v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) {
        bv = ov;
        bi = oi;
      }
    }
    if (lane == 0) {
      best_v[warp] = bv;
      best_i[warp] = bi;
    }
    __syncthreads();
    if (t == 0) {
      for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
        if (best_v[w] > bv || (best_v[w] == bv && best_i[w] < bi)) {
          bv = best_v[w];
          bi = best_i[w];
        }
      out[r] = bi == INT32_MAX ? 0 : bi;  // all NaN: 0, as the CPU's argmax
    }
    return;
  }
  const float inv_t = 1.0f / p.temperature;
  uint64_t* key = keys + r * static_cast<int64_t>(pow2);
  uint64_t* w = probs + r * static_cast<int64_t>(n_vocab);
  for (int32_t i = t; i < pow2; i += blockDim.x)
    key[i] = i < n_vocab
                 ? (static_cast<uint64_t>(~order_bits(__fmul_rn(lg[i], inv_t))) << 32) | static_cast<uint32_t>(i)
                 : ~uint64_t{0};
  __syncthreads();
  // Bitonic sort, ascending: highest scaled logit first, then lowest id.
  for (int32_t kk = 2; kk <= pow2; kk <<= 1)
    for (int32_t j = kk >> 1; j > 0; j >>= 1) {
      for (int32_t i = t; i < pow2; i += blockDim.x) {
        const int32_t o = i ^ j;
        if (o > i) {
          const uint64_t a = key[i], b = key[o];
          const bool up = (i & kk) == 0;
          if ((a > b) == up) {
            key[i] = b;
            key[o] = a;
          }
        }
      }
      __syncthreads();
    }
  int32_t n = (p.top_k > 0 && p.top_k < n_vocab) ? p.top_k : n_vocab;
  // Rounded exactly as the CPU rounds them (no fused multiply-add), the same
  // exp and integer weights (det_math.hpp): the same token as the CPU.
  const float mx = __fmul_rn(lg[static_cast<uint32_t>(key[0])], inv_t);
  for (int32_t i = t; i < n; i += blockDim.x)
    w[i] = prob_fixed(det_expf(__fsub_rn(__fmul_rn(lg[static_cast<uint32_t>(key[i])], inv_t), mx)));
  __syncthreads();
  int32_t chunk = (n + sample_threads - 1) / sample_threads;
  uint64_t start = chunk_scan(w, n, chunk, scan);
  uint64_t total = scan[sample_threads - 1];
  if (p.top_p < 1.0f) {  // the fewest candidates whose mass reaches top_p
    const uint64_t need = mass_threshold(p.top_p, total);
    if (t == 0) found = INT32_MAX;
    __syncthreads();
    uint64_t run = start;
    for (int32_t i = t * chunk; i < n && i < (t + 1) * chunk; ++i) {
      run += w[i];
      if (run >= need) {
        atomicMin(&found, i);
        break;
      }
    }
    __syncthreads();
    if (found != INT32_MAX) n = found + 1;
    chunk = (n + sample_threads - 1) / sample_threads;
    start = chunk_scan(w, n, chunk, scan);
    total = scan[sample_threads - 1];
  }
  const uint64_t u = draw_point(sampling_bits(p.seed, p.position), total);
  if (t == 0) found = INT32_MAX;
  __syncthreads();
  uint64_t run = start;
  for (int32_t i = t * chunk; i < n && i < (t + 1) * chunk; ++i) {
    run += w[i];
    if (u < run) {
      atomicMin(&found, i);
      break;
    }
  }
  __syncthreads();
  if (t == 0) out[r] = static_cast<int32_t>(static_cast<uint32_t>(key[found != INT32_MAX ? found : n - 1]));
}

// --- launchers ---------------------------------------------------------------------------

static unsigned blocks_for(int64_t n, int64_t per) { return static_cast<unsigned>((n + per - 1) / per); }

cudaError_t embed(ggml_type type, const unsigned char* table, size_t row_bytes, const int32_t* tokens, float* x,
                  int64_t T, int64_t d, cudaStream_t st) {
  const dim3 g(static_cast<unsigned>(T)), b(256);
  switch (type) {
    case ggml_type::f32: embed_kernel<ggml_type::f32><<<g, b, 0, st>>>(table, row_bytes, tokens, x, d); break;
    case ggml_type::f16: embed_kernel<ggml_type::f16><<<g, b, 0, st>>>(table, row_bytes, tokens, x, d); break;
    case ggml_type::bf16: embed_kernel<ggml_type::bf16><<<g, b, 0, st>>>(table, row_bytes, tokens, x, d); break;
    case ggml_type::q8_0: embed_kernel<ggml_type::q8_0><<<g, b, 0, st>>>(table, row_bytes, tokens, x, d); break;
  }
  return cudaGetLastError();
}

cudaError_t add_rmsnorm(float* x, const float* delta, const float* g, float* y, const int32_t* rows, int64_t n_rows,
                        int64_t d, float eps, cudaStream_t st) {
  add_rmsnorm_kernel<<<static_cast<unsigned>(n_rows), 256, 0, st>>>(x, delta, g, y, rows, d, eps);
  return cudaGetLastError();
}

/// y (+)= x W^T, or with `w2` (SwiGLU) y = silu(x W^T) * (x W2^T).
namespace {
bool generic_only = std::getenv("BRIGADE_CUDA_GENERIC") != nullptr;  // compare the fast paths with the plain ones
bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
}  // namespace

void set_generic_kernels(bool on) { generic_only = on; }
bool generic_kernels() { return generic_only; }

bool tensor_core_path(ggml_type type, int64_t K, int64_t T) {
  return !generic_only && type == ggml_type::f16 && T >= 16 && K > 0 && K % tc_k == 0;
}

int matmul_splits(ggml_type type, int64_t K, int64_t N, int64_t T, int sm_count) {
  if (!tensor_core_path(type, K, T) || sm_count <= 0) return 1;
  const int64_t blocks = static_cast<int64_t>(blocks_for(N, tc_rows)) * blocks_for(T, tc_tokens);
  if (blocks >= 2 * sm_count) return 1;
  return static_cast<int>(std::min<int64_t>({8, (2 * sm_count + blocks - 1) / blocks, K / tc_k}));
}

cudaError_t matmul(ggml_type type, const unsigned char* w, const unsigned char* w2, size_t row_bytes, int64_t K,
                   int64_t N, const float* x, int64_t ldx, int64_t T, float* y, int64_t ldy, bool accumulate,
                   cudaStream_t st, float* scratch, size_t scratch_floats, int sm_count) {
  const dim3 g(blocks_for(N, mm_warps), blocks_for(T, mm_tokens)), b(mm_warps * 32);
  const int acc = accumulate ? 1 : 0;
  const bool vec = !generic_only && (type == ggml_type::f16 || type == ggml_type::bf16) && K % 8 == 0 && ldx % 4 == 0 &&
                   row_bytes % 16 == 0 && aligned16(w) && (!w2 || aligned16(w2)) && aligned16(x);
#define BRIGADE_MM(TYPE, VEC)                                                                        \
  if (w2)                                                                                            \
    matmul_kernel<TYPE, true, VEC><<<g, b, 0, st>>>(w, w2, row_bytes, K, N, x, ldx, T, y, ldy, acc); \
  else                                                                                               \
    matmul_kernel<TYPE, false, VEC><<<g, b, 0, st>>>(w, w2, row_bytes, K, N, x, ldx, T, y, ldy, acc);
  if (vec && tensor_core_path(type, K, T)) {
    int splits = matmul_splits(type, K, N, T, sm_count);
    if (!scratch || static_cast<size_t>(splits) * T * N * (w2 ? 2 : 1) > scratch_floats) splits = 1;
    const dim3 tg(blocks_for(N, tc_rows), blocks_for(T, tc_tokens), static_cast<unsigned>(splits));
    if (w2)
      matmul_tc_kernel<true><<<tg, tc_warps * 32, 0, st>>>(w, w2, row_bytes, K, N, x, ldx, T, y, ldy, acc, scratch);
    else
      matmul_tc_kernel<false><<<tg, tc_warps * 32, 0, st>>>(w, w2, row_bytes, K, N, x, ldx, T, y, ldy, acc, scratch);
    if (splits > 1) {
      if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
      matmul_reduce_kernel<<<blocks_for(T * N, 256), 256, 0, st>>>(scratch, splits, T, N, y, ldy, acc, w2 ? 1 : 0);
    }
    return cudaGetLastError();
  }
  if (vec) {
    if (type == ggml_type::f16) {
      BRIGADE_MM(ggml_type::f16, true)
    } else {
      BRIGADE_MM(ggml_type::bf16, true)
    }
    return cudaGetLastError();
  }
  switch (type) {
    case ggml_type::f32: BRIGADE_MM(ggml_type::f32, false) break;
    case ggml_type::f16: BRIGADE_MM(ggml_type::f16, false) break;
    case ggml_type::bf16: BRIGADE_MM(ggml_type::bf16, false) break;
    case ggml_type::q8_0: BRIGADE_MM(ggml_type::q8_0, false) break;
  }
#undef BRIGADE_MM
  return cudaGetLastError();
}

cudaError_t rope_kv(float* q, const float* kk, const float* v, float* k_cache, float* v_cache, const int32_t* pos,
                    const int32_t* slot, int64_t T, int n_head, int n_head_kv, int hd, int64_t ldq, int64_t ldkv,
                    int64_t kv_dim, float theta_scale, cudaStream_t st) {
  rope_kv_kernel<<<static_cast<unsigned>(T), 128, 0, st>>>(q, kk, v, k_cache, v_cache, pos, slot, n_head, n_head_kv, hd,
                                                           ldq, ldkv, kv_dim, theta_scale);
  return cudaGetLastError();
}

cudaError_t attention(const float* q, const float* k_cache, const float* v_cache, float* out, const int32_t* npos,
                      const int32_t* boff, const int32_t* blocks, int bs, int64_t T, int n_head, int group, int hd,
                      int64_t ldq, int64_t ldo, int64_t kv_dim, float scale, int splits, float* partial,
                      cudaStream_t st) {
  if (hd > att_max_per_lane * 32 || splits < 1 || splits > 64 || (splits > 1 && !partial)) return cudaErrorInvalidValue;
  const dim3 g(static_cast<unsigned>(T), static_cast<unsigned>(n_head), static_cast<unsigned>(splits));
  attention_kernel<<<g, att_warps * 32, 0, st>>>(q, k_cache, v_cache, out, npos, boff, blocks, bs, group, hd, ldq, ldo,
                                                 kv_dim, scale, partial);
  if (splits > 1) {
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    attention_combine_kernel<<<dim3(static_cast<unsigned>(T), static_cast<unsigned>(n_head)), 64, 0, st>>>(
        partial, out, splits, hd, ldo);
  }
  return cudaGetLastError();
}

int attention_splits(int64_t T, int n_head, int sm_count) {
  const int64_t blocks = T * n_head;
  if (blocks >= 2 * sm_count) return 1;
  return static_cast<int>(std::min<int64_t>(16, (2 * sm_count + blocks - 1) / blocks));
}

cudaError_t sample(const float* logits, int32_t n_vocab, const sample_desc* desc, uint64_t* keys, uint64_t* probs,
                   int32_t pow2, int32_t* out, int64_t rows, cudaStream_t st) {
  sample_kernel<<<static_cast<unsigned>(rows), sample_threads, 0, st>>>(logits, n_vocab, desc, keys, probs, pow2, out);
  return cudaGetLastError();
}

/// The power of two at or above n (the sort length for a vocabulary).
int32_t pow2_at_least(int32_t n) {
  int32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace brigade::cuda::k
